// Row softmax over the last axis of a contiguous f32 [rows, cols] tensor, in place: the softmax of
// the unfused attention path (score chunks of up to 1024 x 28,736). candle's softmax gives each
// row one warp and reads it three times; with one 1024-row chunk that is eight warps per
// multiprocessor, too few to keep the memory busy. Here a block of 256 threads takes a row: one
// pass keeps a running maximum and sum per thread (merged across the block), a second writes
// exp(x - max) / sum. expf, not the fast intrinsic, so f32 results stay at f32 accuracy.

#include <stdint.h>

constexpr int THREADS = 256;

// Merge two (max, sum of exp(x - max)) pairs.
__device__ __forceinline__ void merge(float& m, float& l, float m2, float l2) {
    if (m2 == -INFINITY) return;
    if (m == -INFINITY) {
        m = m2;
        l = l2;
        return;
    }
    const float mx = fmaxf(m, m2);
    l = l * expf(m - mx) + l2 * expf(m2 - mx);
    m = mx;
}

extern "C" __global__ void __launch_bounds__(THREADS) softmax_rows_f32(float* x, uint32_t cols) {
    float* row = x + (size_t)blockIdx.x * cols;
    float m = -INFINITY, l = 0.f;
    for (uint32_t c = threadIdx.x; c < cols; c += THREADS) {
        const float v = row[c];
        if (v > m) {
            l = (m == -INFINITY ? 0.f : l * expf(m - v)) + 1.f;
            m = v;
        } else if (v != -INFINITY) {
            l += expf(v - m);
        }
    }
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) {
        const float m2 = __shfl_xor_sync(0xffffffff, m, off);
        const float l2 = __shfl_xor_sync(0xffffffff, l, off);
        merge(m, l, m2, l2);
    }
    __shared__ float sm[THREADS / 32], sl[THREADS / 32];
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    if (lane == 0) {
        sm[warp] = m;
        sl[warp] = l;
    }
    __syncthreads();
    if (warp == 0) {
        m = lane < THREADS / 32 ? sm[lane] : -INFINITY;
        l = lane < THREADS / 32 ? sl[lane] : 0.f;
#pragma unroll
        for (int off = 16; off > 0; off >>= 1) {
            const float m2 = __shfl_xor_sync(0xffffffff, m, off);
            const float l2 = __shfl_xor_sync(0xffffffff, l, off);
            merge(m, l, m2, l2);
        }
        if (lane == 0) {
            sm[0] = m;
            sl[0] = l;
        }
    }
    __syncthreads();
    const float mx = sm[0], inv = 1.f / sl[0];
    for (uint32_t c = threadIdx.x; c < cols; c += THREADS) row[c] = expf(row[c] - mx) * inv;
}
