// In-place bias add over the last axis of a contiguous [rows, cols] tensor: x[r, c] += b[c].
// candle's broadcast add runs its strided kernel here (an index computed per element through
// every dimension), which profiled at a tenth of the memory bandwidth on an H200; this is the
// contiguous pattern only. Sums are rounded as candle's own add rounds them (the sum of the two
// values in the element type's arithmetic: f32, or f16/bf16 via f32 and one rounding).

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

__device__ __forceinline__ float add(float a, float c) { return a + c; }
__device__ __forceinline__ __half add(__half a, __half c) { return __hadd(a, c); }
__device__ __forceinline__ __nv_bfloat16 add(__nv_bfloat16 a, __nv_bfloat16 c) { return __hadd(a, c); }

template <typename T>
__device__ __forceinline__ void bias_add_body(T* x, const T* b, uint32_t n, uint32_t cols) {
    for (uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
        x[i] = add(x[i], b[i % cols]);
    }
}

extern "C" __global__ void bias_add_f32(float* x, const float* b, uint32_t n, uint32_t cols) {
    bias_add_body(x, b, n, cols);
}

extern "C" __global__ void bias_add_f16(__half* x, const __half* b, uint32_t n, uint32_t cols) {
    bias_add_body(x, b, n, cols);
}

extern "C" __global__ void bias_add_bf16(__nv_bfloat16* x, const __nv_bfloat16* b, uint32_t n, uint32_t cols) {
    bias_add_body(x, b, n, cols);
}
