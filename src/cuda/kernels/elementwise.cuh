// Scalar helpers shared by vosbench's elementwise kernels (bias_add.cu, rope.cu, layer_norm2d.cu):
// conversions between f32 and the element types, and candle's activations with candle's
// rounding (so a fused kernel gives what the separate candle ops give).

#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

__device__ __forceinline__ float to_f(float x) { return x; }
__device__ __forceinline__ float to_f(__half x) { return __half2float(x); }
__device__ __forceinline__ float to_f(__nv_bfloat16 x) { return __bfloat162float(x); }
template <typename T> __device__ __forceinline__ T from_f(float x);
template <> __device__ __forceinline__ float from_f<float>(float x) { return x; }
template <> __device__ __forceinline__ __half from_f<__half>(float x) { return __float2half_rn(x); }
template <> __device__ __forceinline__ __nv_bfloat16 from_f<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }

// relu = max(x, 0): fmaxf in f32, __hmax_nan (NaN kept) in f16/bf16, as candle's `relu`.
__device__ __forceinline__ float relu(float a) { return fmaxf(a, 0.f); }
__device__ __forceinline__ __half relu(__half a) { return __hmax_nan(a, __float2half(0.f)); }
__device__ __forceinline__ __nv_bfloat16 relu(__nv_bfloat16 a) { return __hmax_nan(a, __float2bfloat16(0.f)); }
// erf-GELU = x * normcdf(x), normcdf in f32 and, for f16/bf16, rounded before the rounded
// product, as candle's `gelu_erf`.
__device__ __forceinline__ float gelu(float a) { return a * normcdff(a); }
__device__ __forceinline__ __half gelu(__half a) { return __hmul(a, __float2half(normcdff(__half2float(a)))); }
__device__ __forceinline__ __nv_bfloat16 gelu(__nv_bfloat16 a) {
    return __hmul(a, __float2bfloat16(normcdff(__bfloat162float(a))));
}
