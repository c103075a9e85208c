// Axial RoPE in one pass for vosbench (`crate::cuda::rope`): x [rows, N, D] contiguous in T,
// cos/sin [period, D/2] f32; token n < n_rope of every row is rotated with table row n % period,
// tokens n >= n_rope (object pointers) are copied unchanged:
//   y[2j]     = x[2j] * cos[j] - x[2j+1] * sin[j]
//   y[2j + 1] = x[2j] * sin[j] + x[2j+1] * cos[j]
// in f32 and rounded once to T. This is candle's `rope_i` on the f32 copy of x followed by the
// cast back, the narrow of the rotated tokens and the concatenation with the rest, which the
// unfused path (`nn::rope`) runs as five kernels and as many passes over the keys.
// 16 bytes per thread (VEC elements); D is a multiple of VEC, so a vector never spans two tokens.

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

#include "elementwise.cuh"

template <typename T>
__device__ __forceinline__ void rope_body(const T* __restrict__ x, const float* __restrict__ cos,
                                          const float* __restrict__ sin, T* __restrict__ y, uint32_t n_vec,
                                          uint32_t tokens, uint32_t d, uint32_t n_rope, uint32_t period) {
    constexpr int VEC = 16 / sizeof(T);
    const uint32_t vec_per_token = d / VEC;
    const int4* xv = reinterpret_cast<const int4*>(x);
    int4* yv = reinterpret_cast<int4*>(y);
    for (uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n_vec; i += gridDim.x * blockDim.x) {
        int4 v = xv[i];
        const uint32_t flat_token = i / vec_per_token;
        const uint32_t n = flat_token % tokens;
        if (n < n_rope) {
            const uint32_t col = (i - flat_token * vec_per_token) * VEC;  // first channel of the vector
            const float* c = cos + (size_t)(n % period) * (d / 2) + col / 2;
            const float* s = sin + (size_t)(n % period) * (d / 2) + col / 2;
            T* e = reinterpret_cast<T*>(&v);
#pragma unroll
            for (int p = 0; p < VEC / 2; ++p) {
                const float x0 = to_f(e[2 * p]), x1 = to_f(e[2 * p + 1]);
                const float cj = __ldg(c + p), sj = __ldg(s + p);
                e[2 * p] = from_f<T>(x0 * cj - x1 * sj);
                e[2 * p + 1] = from_f<T>(x0 * sj + x1 * cj);
            }
        }
        yv[i] = v;
    }
}

#define ROPE(SUFFIX, T)                                                                                  \
    extern "C" __global__ void rope_##SUFFIX(const T* x, const float* cos, const float* sin, T* y,      \
                                             uint32_t n_vec, uint32_t tokens, uint32_t d, uint32_t n_rope, \
                                             uint32_t period) {                                          \
        rope_body(x, cos, sin, y, n_vec, tokens, d, n_rope, period);                                    \
    }

ROPE(f32, float)
ROPE(f16, __half)
ROPE(bf16, __nv_bfloat16)
