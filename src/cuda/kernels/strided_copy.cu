// Strided tensor -> contiguous copy (transposes, permutes, narrowed views), the copy behind
// `.contiguous()` and reshapes of permuted views. candle's copy kernel computes each source
// offset with 64-bit divisions over dims and strides read from device memory; here the (merged)
// dims and strides travel as a kernel argument and the index math is 32-bit, which is what
// makes the difference for these memory-bound copies. Elements are moved as raw 2 or 4 bytes, or,
// when the innermost dim is contiguous and every offset is a multiple of the width, as 8- or
// 16-byte vectors of them (`b64`, `b128`: the host divides the innermost dim and the other
// strides by the vector's element count), which cuts the index math and the memory transactions
// by that factor.

#include <stdint.h>

struct Strided {
    uint32_t rank;
    uint32_t dims[6];
    uint32_t strides[6];
};

template <typename T>
__device__ __forceinline__ void copy_body(const T* __restrict__ src, T* __restrict__ dst, uint32_t n, const Strided s) {
    for (uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
        uint32_t rem = i, off = 0;
#pragma unroll
        for (int d = 5; d >= 0; --d) {
            if (d < (int)s.rank) {
                const uint32_t q = rem / s.dims[d];
                off += (rem - q * s.dims[d]) * s.strides[d];
                rem = q;
            }
        }
        dst[i] = src[off];
    }
}

extern "C" __global__ void strided_copy_b16(const uint16_t* src, uint16_t* dst, uint32_t n, const Strided s) {
    copy_body(src, dst, n, s);
}

extern "C" __global__ void strided_copy_b32(const uint32_t* src, uint32_t* dst, uint32_t n, const Strided s) {
    copy_body(src, dst, n, s);
}

extern "C" __global__ void strided_copy_b64(const uint2* src, uint2* dst, uint32_t n, const Strided s) {
    copy_body(src, dst, n, s);
}

extern "C" __global__ void strided_copy_b128(const uint4* src, uint4* dst, uint32_t n, const Strided s) {
    copy_body(src, dst, n, s);
}
