// SAM's `LayerNorm2d` in one kernel (`crate::cuda::layer_norm2d`): x [B, C, HW] contiguous in T,
// normalised over C for every (b, pixel), in f32 as the unfused path (`nn::norm::LayerNorm2d`)
// computes it: mean u, biased variance s of the centred values, (x - u) / sqrt(s + eps) * w + b,
// rounded once to T; optionally followed by candle's erf-GELU on that T value (the norm -> GELU
// pairs of the mask downsampler and the mask decoder's upscaling).
// The unfused path is ten kernels and as many passes over an f32 copy; this reads x three times
// (mean, variance, output), from L2 for the maps SAM uses (4 MB in f32).
// Block: 32 pixels x 8 channel lanes; each thread sums every 8th channel of its pixel, and the 8
// partial sums of a pixel meet in shared memory.

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

#include "elementwise.cuh"

constexpr int PX = 32;
constexpr int LANES = 8;

// Sum of the LANES partial values of each pixel column; every thread gets its pixel's total.
__device__ __forceinline__ float column_sum(float v, float (*red)[PX]) {
    red[threadIdx.y][threadIdx.x] = v;
    __syncthreads();
    float t = 0.f;
#pragma unroll
    for (int l = 0; l < LANES; ++l) t += red[l][threadIdx.x];
    __syncthreads();
    return t;
}

template <typename T, bool GELU>
__device__ __forceinline__ void ln2d_body(const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ b,
                                          T* __restrict__ y, uint32_t c, uint32_t hw, float eps) {
    __shared__ float red[LANES][PX];
    const uint32_t pixel = blockIdx.x * PX + threadIdx.x;  // within one image
    const uint32_t img = blockIdx.y;
    const bool live = pixel < hw;
    const size_t base = (size_t)img * c * hw + pixel;
    float s = 0.f;
    if (live)
        for (uint32_t ch = threadIdx.y; ch < c; ch += LANES) s += to_f(x[base + (size_t)ch * hw]);
    const float mean = column_sum(s, red) / (float)c;
    float q = 0.f;
    if (live)
        for (uint32_t ch = threadIdx.y; ch < c; ch += LANES) {
            const float d = to_f(x[base + (size_t)ch * hw]) - mean;
            q += d * d;
        }
    const float var = column_sum(q, red) / (float)c;
    const float denom = sqrtf(var + eps);
    if (!live) return;
    for (uint32_t ch = threadIdx.y; ch < c; ch += LANES) {
        const float xn = (to_f(x[base + (size_t)ch * hw]) - mean) / denom;
        T v = from_f<T>(xn * to_f(w[ch]) + to_f(b[ch]));
        if (GELU) v = gelu(v);
        y[base + (size_t)ch * hw] = v;
    }
}

#define LN2D(SUFFIX, T)                                                                                   \
    extern "C" __global__ void __launch_bounds__(PX * LANES)                                              \
        layer_norm2d_##SUFFIX(const T* x, const T* w, const T* b, T* y, uint32_t c, uint32_t hw, float eps) { \
        ln2d_body<T, false>(x, w, b, y, c, hw, eps);                                                      \
    }                                                                                                     \
    extern "C" __global__ void __launch_bounds__(PX * LANES) layer_norm2d_gelu_##SUFFIX(                  \
        const T* x, const T* w, const T* b, T* y, uint32_t c, uint32_t hw, float eps) {                   \
        ln2d_body<T, true>(x, w, b, y, c, hw, eps);                                                       \
    }

LN2D(f32, float)
LN2D(f16, __half)
LN2D(bf16, __nv_bfloat16)
