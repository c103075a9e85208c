// In-place bias add over the last axis of a contiguous [rows, cols] tensor: x[r, c] += b[c].
// candle's broadcast add runs its strided kernel here (an index computed per element through
// every dimension), which profiled at a tenth of the memory bandwidth on an H200; this is the
// contiguous pattern only. Sums are rounded as candle's own add rounds them (the sum of the two
// values in the element type's arithmetic: f32, or f16/bf16 via f32 and one rounding).
//
// `bias_add_*` takes one element per thread; `bias_add_vec_*` 16 bytes per thread (8 halves or 4
// floats), for rows whose length is a multiple of that and 16-byte aligned x and b: one vector
// load of x and of b and one store, and one index division per vector instead of per element.
// `bias_relu_vec_*` and `bias_gelu_vec_*` apply the Linear's activation in the same pass, with
// candle's arithmetic for it on the rounded sum: relu = max(x, 0) (NaN kept in f16/bf16, as
// `__hmax_nan`; fmaxf in f32), gelu = x * normcdf(x) with normcdf evaluated in f32 and, for
// f16/bf16, rounded before the (rounded) product.

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

#include "elementwise.cuh"

__device__ __forceinline__ float add(float a, float c) { return a + c; }
__device__ __forceinline__ __half add(__half a, __half c) { return __hadd(a, c); }
__device__ __forceinline__ __nv_bfloat16 add(__nv_bfloat16 a, __nv_bfloat16 c) { return __hadd(a, c); }

template <typename T>
__device__ __forceinline__ void bias_add_body(T* x, const T* b, uint32_t n, uint32_t cols) {
    for (uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
        x[i] = add(x[i], b[i % cols]);
    }
}

enum class Act { None, Relu, Gelu };

template <Act A, typename T> __device__ __forceinline__ T act(T v) {
    if constexpr (A == Act::Relu) return relu(v);
    else if constexpr (A == Act::Gelu) return gelu(v);
    else return v;
}

// n_vec = n / VEC vectors, cols_vec = cols / VEC vectors per row.
template <typename T, Act A = Act::None>
__device__ __forceinline__ void bias_add_vec_body(T* x, const T* b, uint32_t n_vec, uint32_t cols_vec) {
    constexpr int VEC = 16 / sizeof(T);
    int4* xv = reinterpret_cast<int4*>(x);
    const int4* bv = reinterpret_cast<const int4*>(b);
    for (uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n_vec; i += gridDim.x * blockDim.x) {
        int4 xi = xv[i];
        const int4 bi = __ldg(bv + i % cols_vec);
        T* xe = reinterpret_cast<T*>(&xi);
        const T* be = reinterpret_cast<const T*>(&bi);
#pragma unroll
        for (int e = 0; e < VEC; ++e) xe[e] = act<A>(add(xe[e], be[e]));
        xv[i] = xi;
    }
}

#define BIAS_ADD(SUFFIX, T)                                                                                 \
    extern "C" __global__ void bias_add_##SUFFIX(T* x, const T* b, uint32_t n, uint32_t cols) {            \
        bias_add_body(x, b, n, cols);                                                                       \
    }                                                                                                       \
    extern "C" __global__ void bias_add_vec_##SUFFIX(T* x, const T* b, uint32_t n_vec, uint32_t cols_vec) { \
        bias_add_vec_body<T, Act::None>(x, b, n_vec, cols_vec);                                             \
    }                                                                                                       \
    extern "C" __global__ void bias_relu_vec_##SUFFIX(T* x, const T* b, uint32_t n_vec, uint32_t cols_vec) { \
        bias_add_vec_body<T, Act::Relu>(x, b, n_vec, cols_vec);                                             \
    }                                                                                                       \
    extern "C" __global__ void bias_gelu_vec_##SUFFIX(T* x, const T* b, uint32_t n_vec, uint32_t cols_vec) { \
        bias_add_vec_body<T, Act::Gelu>(x, b, n_vec, cols_vec);                                             \
    }

BIAS_ADD(f32, float)
BIAS_ADD(f16, __half)
BIAS_ADD(bf16, __nv_bfloat16)
