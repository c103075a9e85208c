// Max-pool with kernel = stride of a channel-last map (Hiera's q-pool; `crate::cuda::max_pool`):
// x [B, H, W, C] contiguous -> y [B, H/sh, W/sw, C] (floor: trailing rows/columns dropped), the
// maximum over each sh x sw window taken as candle's `maximum` takes it (fmaxf for f32,
// __hmax_nan for f16/bf16). The unfused path (narrowed views and pairwise maxima) made candle copy
// every view first: about a millisecond of a SAM 2.1 tiny frame for six pools.
// 16 bytes of channels per thread (C a multiple of 16 / sizeof(T)).

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

__device__ __forceinline__ float mx(float a, float b) { return fmaxf(a, b); }
__device__ __forceinline__ __half mx(__half a, __half b) { return __hmax_nan(a, b); }
__device__ __forceinline__ __nv_bfloat16 mx(__nv_bfloat16 a, __nv_bfloat16 b) { return __hmax_nan(a, b); }

template <typename T>
__device__ __forceinline__ void pool_body(const T* __restrict__ x, T* __restrict__ y, uint32_t n_vec, uint32_t h,
                                          uint32_t w, uint32_t c, uint32_t sh, uint32_t sw) {
    constexpr int VEC = 16 / sizeof(T);
    const uint32_t cv = c / VEC, ho = h / sh, wo = w / sw;
    for (uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n_vec; i += gridDim.x * blockDim.x) {
        const uint32_t v = i % cv;
        uint32_t r = i / cv;
        const uint32_t ox = r % wo;
        r /= wo;
        const uint32_t oy = r % ho;
        const uint32_t bi = r / ho;
        int4 acc;
        T* a = reinterpret_cast<T*>(&acc);
        for (uint32_t dy = 0; dy < sh; ++dy)
            for (uint32_t dx = 0; dx < sw; ++dx) {
                const size_t src = (((size_t)bi * h + oy * sh + dy) * w + ox * sw + dx) * cv + v;
                const int4 val = reinterpret_cast<const int4*>(x)[src];
                const T* e = reinterpret_cast<const T*>(&val);
                if (dy == 0 && dx == 0) {
                    acc = val;
                } else {
#pragma unroll
                    for (int k = 0; k < VEC; ++k) a[k] = mx(a[k], e[k]);
                }
            }
        reinterpret_cast<int4*>(y)[i] = acc;
    }
}

#define POOL(SUFFIX, T)                                                                                   \
    extern "C" __global__ void max_pool_nhwc_##SUFFIX(const T* x, T* y, uint32_t n_vec, uint32_t h,      \
                                                      uint32_t w, uint32_t c, uint32_t sh, uint32_t sw) { \
        pool_body(x, y, n_vec, h, w, c, sh, sw);                                                          \
    }

POOL(f32, float)
POOL(f16, __half)
POOL(bf16, __nv_bfloat16)
