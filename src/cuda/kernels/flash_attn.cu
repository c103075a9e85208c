// Fused scaled-dot-product attention (flash-attention style forward) for vosbench.
//
// out[bh, i, :] = softmax(scale * q[bh, i, :] . k[bh, j, :] over j) @ v[bh, :, :]
//
// q: [BH, Nq, D], k and v: [BH, Nk, D], contiguous; out: [BH, Nq, D] in the input type.
// One block holds BM = 64 query rows (4 warps x 16 rows) and walks the keys in tiles of BN,
// keeping a running row maximum and row sum (online softmax, base 2), so no score matrix is
// ever written to memory (bf16/f16: `flash_body16`, asynchronous copies, ldmatrix, probabilities
// kept in registers; f32: `flash_body`, through registers and a shared probability tile).
// Products run on tensor cores through mma.sync:
//   bf16 / f16: m16n8k16, f32 accumulation, probabilities rounded to the input type before P.V
//               (as the unfused path and PyTorch's kernels do);
//   f32 TF32:   m16n8k8 on TF32-rounded inputs (the user asked for TF32);
//   f32 exact:  m16n8k8 three times per step on a big/small TF32 split of both operands
//               (a*b ~ ab*bb + ab*bs + as*bb), which keeps f32 accuracy on tensor cores.
// When there are few query tiles, the keys are split over blockIdx.z; each split writes its
// unnormalised output with its row max and sum, and `combine_*` merges them.

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

namespace {

constexpr int BM = 64;
constexpr int WARPS = 4;
constexpr int THREADS = WARPS * 32;

// mma.sync with these types needs compute capability 8.0. Builds for older GPUs compile the
// kernels with trapping stubs; `flash_attn::supports` never sends such a device here.
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800
__device__ __forceinline__ uint32_t to_tf32(float x) {
    uint32_t r;
    asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(x));
    return r;
}

__device__ __forceinline__ void mma_tf32(float (&c)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
    asm volatile(
        "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

__device__ __forceinline__ void mma_bf16(float (&c)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

__device__ __forceinline__ void mma_f16(float (&c)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

// 16-byte global -> shared copy that bypasses registers; `valid == false` writes 16 zero bytes
// (src-size 0 reads nothing).
__device__ __forceinline__ void cp_async16(void* dst, const void* src, bool valid) {
    const uint32_t s = static_cast<uint32_t>(__cvta_generic_to_shared(dst));
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(s), "l"(src), "r"(valid ? 16 : 0));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;" ::); }
// Wait until at most N of this thread's committed copy groups are still in flight.
template <int N> __device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;" ::"n"(N)); }

// Four 8x8 16-bit matrices from shared memory; lanes 8i..8i+7 give the row addresses of matrix i.
__device__ __forceinline__ void ldsm_x4(uint32_t (&r)[4], const void* p) {
    const uint32_t s = static_cast<uint32_t>(__cvta_generic_to_shared(p));
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(s));
}
// The same, each matrix transposed on the way into registers.
__device__ __forceinline__ void ldsm_x4_t(uint32_t (&r)[4], const void* p) {
    const uint32_t s = static_cast<uint32_t>(__cvta_generic_to_shared(p));
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(s));
}
#else
__device__ __forceinline__ void cp_async16(void*, const void*, bool) { __trap(); }
__device__ __forceinline__ void cp_async_commit() { __trap(); }
template <int N> __device__ __forceinline__ void cp_async_wait() { __trap(); }
__device__ __forceinline__ void ldsm_x4(uint32_t (&)[4], const void*) { __trap(); }
__device__ __forceinline__ void ldsm_x4_t(uint32_t (&)[4], const void*) { __trap(); }
__device__ __forceinline__ uint32_t to_tf32(float x) { __trap(); return 0; }
__device__ __forceinline__ void mma_tf32(float (&)[4], const uint32_t (&)[4], const uint32_t (&)[2]) { __trap(); }
__device__ __forceinline__ void mma_bf16(float (&)[4], const uint32_t (&)[4], const uint32_t (&)[2]) { __trap(); }
__device__ __forceinline__ void mma_f16(float (&)[4], const uint32_t (&)[4], const uint32_t (&)[2]) { __trap(); }
#endif

// Per element type: the mma and conversions (16-bit types, used by `flash_body16`, which loads
// its fragments with ldmatrix), or also the k extent of one mma, shared-memory padding and
// fragment loads (f32, `FragF32`, used by `flash_body`). Fragment layouts are PTX's
// (g = lane / 4, t = lane % 4). Shared arrays are row-major with leading dimension `ld` (elements).
template <typename T> struct Frag;

// 16-bit types: two values packed into the 32-bit register of an mma operand (low half first).
template <typename T> struct Frag16 {
    __device__ static uint32_t pack(T lo, T hi) {
        uint16_t l = *reinterpret_cast<const uint16_t*>(&lo);
        uint16_t h = *reinterpret_cast<const uint16_t*>(&hi);
        return uint32_t(l) | (uint32_t(h) << 16);
    }
};

template <> struct Frag<__nv_bfloat16> : Frag16<__nv_bfloat16> {
    __device__ static void mma(float (&c)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) { mma_bf16(c, a, b); }
    __device__ static __nv_bfloat16 from_f32(float x) { return __float2bfloat16_rn(x); }
    __device__ static float to_f32(__nv_bfloat16 x) { return __bfloat162float(x); }
};

template <> struct Frag<__half> : Frag16<__half> {
    __device__ static void mma(float (&c)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) { mma_f16(c, a, b); }
    __device__ static __half from_f32(float x) { return __float2half_rn(x); }
    __device__ static float to_f32(__half x) { return __half2float(x); }
};

// f32: A 16x8, B 8x8, TF32 operands. SPLIT: three products on a big/small split.
template <bool SPLIT> struct FragF32 {
    static constexpr int KSTEP = 8;
    static constexpr int PAD_QK = 4;  // row stride == 4 (mod 32) words
    static constexpr int PAD_V = 8;   // row stride == 8 (mod 32): the k-major B loads are conflict-free
    static constexpr int PAD_P = 4;
    static constexpr int BN = 32;
    // Operands are kept as raw floats; the split happens at the mma.
    __device__ static void load_a(float (&a)[4], const float* s, int ld, int row0, int k0, int g, int t) {
        const float* p0 = s + (row0 + g) * ld + k0 + t;
        const float* p1 = p0 + 8 * ld;
        a[0] = p0[0];
        a[1] = p1[0];
        a[2] = p0[4];
        a[3] = p1[4];
    }
    __device__ static void load_b_nk(float (&b)[2], const float* s, int ld, int n0, int k0, int g, int t) {
        const float* p = s + (n0 + g) * ld + k0 + t;
        b[0] = p[0];
        b[1] = p[4];
    }
    __device__ static void load_b_kn(float (&b)[2], const float* s, int ld, int k0, int n0, int g, int t) {
        const float* p = s + (k0 + t) * ld + n0 + g;
        b[0] = p[0];
        b[1] = p[4 * ld];
    }
    __device__ static void mma(float (&c)[4], const float (&a)[4], const float (&b)[2]) {
        uint32_t ab[4], bb[2];
#pragma unroll
        for (int i = 0; i < 4; ++i) ab[i] = to_tf32(a[i]);
#pragma unroll
        for (int i = 0; i < 2; ++i) bb[i] = to_tf32(b[i]);
        if (SPLIT) {
            uint32_t as[4], bs[2];
#pragma unroll
            for (int i = 0; i < 4; ++i) as[i] = to_tf32(a[i] - __uint_as_float(ab[i]));
#pragma unroll
            for (int i = 0; i < 2; ++i) bs[i] = to_tf32(b[i] - __uint_as_float(bb[i]));
            mma_tf32(c, as, bb);
            mma_tf32(c, ab, bs);
        }
        mma_tf32(c, ab, bb);
    }
    __device__ static float from_f32(float x) { return x; }
    __device__ static float to_f32(float x) { return x; }
};

// Copy rows [row0, row0 + rows) of a [n, D] matrix into shared memory with leading dimension ld
// and DP >= D columns, zero-filling rows at or past n_valid and columns D..DP (a head dim that is
// not a multiple of the mma's k is padded with zeros, which add nothing to the dot products).
// 16-byte vectors; D * sizeof(T) is a multiple of 16.
template <typename T, int D, int DP>
__device__ __forceinline__ void load_tile(T* dst, int ld, const T* src, int row0, int rows, int n_valid) {
    constexpr int VEC = 16 / sizeof(T);
    constexpr int PER_ROW = DP / VEC;
    for (int i = threadIdx.x; i < rows * PER_ROW; i += THREADS) {
        const int r = i / PER_ROW;
        const int c = (i % PER_ROW) * VEC;
        int4 val = make_int4(0, 0, 0, 0);
        if (c < D && row0 + r < n_valid) val = *reinterpret_cast<const int4*>(src + (size_t)(row0 + r) * D + c);
        *reinterpret_cast<int4*>(dst + r * ld + c) = val;
    }
}

// Write one warp's 16 output rows (r0 = its row g, r1 = r0 + 8): normalised into `out` when the
// keys were not split, else the unnormalised sums with each row's max and sum for `combine_*`.
template <typename T, typename F, int D, int DP>
__device__ __forceinline__ void store_rows(const float (&o)[DP / 8][4], float m0, float m1, float l0, float l1,
                                           T* __restrict__ out, float* __restrict__ opart, float* __restrict__ ml,
                                           int bh, int nq, int r0, int r1, int split, int t) {
    if (gridDim.z == 1) {
        const float inv0 = l0 > 0.f ? 1.f / l0 : 0.f, inv1 = l1 > 0.f ? 1.f / l1 : 0.f;
        T* out0 = out + ((size_t)bh * nq + r0) * D;
        T* out1 = out + ((size_t)bh * nq + r1) * D;
#pragma unroll
        for (int n = 0; n < D / 8; ++n) {  // the padded columns D..DP are not written
            const int c = n * 8 + 2 * t;
            if (r0 < nq) {
                out0[c] = F::from_f32(o[n][0] * inv0);
                out0[c + 1] = F::from_f32(o[n][1] * inv0);
            }
            if (r1 < nq) {
                out1[c] = F::from_f32(o[n][2] * inv1);
                out1[c + 1] = F::from_f32(o[n][3] * inv1);
            }
        }
    } else {
        const size_t rows = (size_t)gridDim.y * nq;
        const size_t base = (size_t)split * rows + (size_t)bh * nq;
#pragma unroll
        for (int n = 0; n < D / 8; ++n) {
            const int c = n * 8 + 2 * t;
            if (r0 < nq) {
                opart[(base + r0) * D + c] = o[n][0];
                opart[(base + r0) * D + c + 1] = o[n][1];
            }
            if (r1 < nq) {
                opart[(base + r1) * D + c] = o[n][2];
                opart[(base + r1) * D + c + 1] = o[n][3];
            }
        }
        if (t == 0) {
            if (r0 < nq) {
                ml[(base + r0) * 2] = m0;
                ml[(base + r0) * 2 + 1] = l0;
            }
            if (r1 < nq) {
                ml[(base + r1) * 2] = m1;
                ml[(base + r1) * 2 + 1] = l1;
            }
        }
    }
}

template <typename T, typename F, typename AT, int D, int DP>
__device__ void flash_body(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
                           T* __restrict__ out, float* __restrict__ opart, float* __restrict__ ml, int nq, int nk,
                           int keys_per_split, float scale_log2) {
    constexpr int BN = F::BN;
    constexpr int KS = F::KSTEP;
    constexpr int LDQ = DP + F::PAD_QK;
    constexpr int LDV = DP + F::PAD_V;
    constexpr int LDP = BN + F::PAD_P;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    T* Qs = reinterpret_cast<T*>(smem_raw);
    T* Ks = Qs + BM * LDQ;
    T* Vs = Ks + BN * LDQ;
    T* Ps = Vs + BN * LDV;

    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane >> 2, t = lane & 3;
    const int bh = blockIdx.y;
    const int q0 = blockIdx.x * BM;
    const int split = blockIdx.z;
    const int k_begin = split * keys_per_split;
    const int k_end = min(nk, k_begin + keys_per_split);
    q += (size_t)bh * nq * D;
    k += (size_t)bh * nk * D;
    v += (size_t)bh * nk * D;
    T* Pw = Ps + warp * 16 * LDP;
    const int wrow = warp * 16;

    load_tile<T, D, DP>(Qs, LDQ, q, q0, BM, nq);

    float o[DP / 8][4];
#pragma unroll
    for (int n = 0; n < DP / 8; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f;
    float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.f, l1 = 0.f;

    for (int kb = k_begin; kb < k_end; kb += BN) {
        __syncthreads();  // the previous tile is no longer read
        load_tile<T, D, DP>(Ks, LDQ, k, kb, BN, k_end);
        load_tile<T, D, DP>(Vs, LDV, v, kb, BN, k_end);
        __syncthreads();

        float s[BN / 8][4];
#pragma unroll
        for (int j = 0; j < BN / 8; ++j) s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.f;
#pragma unroll 2
        for (int kk = 0; kk < DP; kk += KS) {
            AT a[4];
            F::load_a(a, Qs, LDQ, wrow, kk, g, t);
#pragma unroll
            for (int j = 0; j < BN / 8; ++j) {
                AT b[2];
                F::load_b_nk(b, Ks, LDQ, j * 8, kk, g, t);
                F::mma(s[j], a, b);
            }
        }

        // online softmax on rows g (s[.][0..1]) and g + 8 (s[.][2..3]) of this warp
        float mx0 = m0, mx1 = m1;
#pragma unroll
        for (int j = 0; j < BN / 8; ++j) {
#pragma unroll
            for (int c = 0; c < 2; ++c) {
                const bool valid = kb + j * 8 + 2 * t + c < k_end;
                s[j][c] = valid ? s[j][c] * scale_log2 : -INFINITY;
                s[j][2 + c] = valid ? s[j][2 + c] * scale_log2 : -INFINITY;
                mx0 = fmaxf(mx0, s[j][c]);
                mx1 = fmaxf(mx1, s[j][2 + c]);
            }
        }
#pragma unroll
        for (int off = 1; off < 4; off <<= 1) {
            mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffff, mx0, off));
            mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffff, mx1, off));
        }
        const float alpha0 = exp2f(m0 - mx0), alpha1 = exp2f(m1 - mx1);
        m0 = mx0;
        m1 = mx1;
        float sum0 = 0.f, sum1 = 0.f;
#pragma unroll
        for (int j = 0; j < BN / 8; ++j) {
#pragma unroll
            for (int c = 0; c < 2; ++c) {
                const T p0 = F::from_f32(exp2f(s[j][c] - mx0));
                const T p1 = F::from_f32(exp2f(s[j][2 + c] - mx1));
                // the row sum counts the probabilities as P.V will use them
                sum0 += F::to_f32(p0);
                sum1 += F::to_f32(p1);
                Pw[g * LDP + j * 8 + 2 * t + c] = p0;
                Pw[(g + 8) * LDP + j * 8 + 2 * t + c] = p1;
            }
        }
#pragma unroll
        for (int off = 1; off < 4; off <<= 1) {
            sum0 += __shfl_xor_sync(0xffffffff, sum0, off);
            sum1 += __shfl_xor_sync(0xffffffff, sum1, off);
        }
        l0 = l0 * alpha0 + sum0;
        l1 = l1 * alpha1 + sum1;
        __syncwarp();
        // P.V of this tile accumulates in a fresh fragment (BN / KS tensor-core steps) and is
        // added to the running output with ordinary f32 rounding, so the long sum over all keys
        // never runs inside the tensor cores' accumulator.
        AT pa[BN / KS][4];
#pragma unroll
        for (int kk = 0; kk < BN / KS; ++kk) F::load_a(pa[kk], Pw, LDP, 0, kk * KS, g, t);
#pragma unroll
        for (int n = 0; n < DP / 8; ++n) {
            float acc[4] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll
            for (int kk = 0; kk < BN / KS; ++kk) {
                AT b[2];
                F::load_b_kn(b, Vs, LDV, kk * KS, n * 8, g, t);
                F::mma(acc, pa[kk], b);
            }
            o[n][0] = fmaf(o[n][0], alpha0, acc[0]);
            o[n][1] = fmaf(o[n][1], alpha0, acc[1]);
            o[n][2] = fmaf(o[n][2], alpha1, acc[2]);
            o[n][3] = fmaf(o[n][3], alpha1, acc[3]);
        }
        __syncwarp();
    }

    store_rows<T, F, D, DP>(o, m0, m1, l0, l1, out, opart, ml, bh, nq, q0 + wrow + g, q0 + wrow + g + 8, split, t);
}

// Copy rows [row0, row0 + rows) of a [n, D] 16-bit matrix into shared memory (leading dimension
// ld, DP >= D columns) with asynchronous 16-byte copies; rows at or past n_valid and columns
// D..DP are zero-filled. The caller commits and waits.
template <typename T, int D, int DP>
__device__ __forceinline__ void load_tile_async(T* dst, int ld, const T* src, int row0, int rows, int n_valid) {
    static_assert(sizeof(T) == 2 && (D * 2) % 16 == 0 && DP % 8 == 0, "16-byte rows of a 16-bit type");
    constexpr int PER_ROW = DP / 8;
    for (int i = threadIdx.x; i < rows * PER_ROW; i += THREADS) {
        const int r = i / PER_ROW;
        const int c = (i % PER_ROW) * 8;
        const bool valid = c < D && row0 + r < n_valid;
        cp_async16(dst + r * ld + c, valid ? src + (size_t)(row0 + r) * D + c : src, valid);
    }
}

// The bf16/f16 kernel: scores and P.V on tensor cores with f32 accumulation, probabilities
// rounded to T, row sums of the rounded probabilities (as `flash_body`); the running output is
// rescaled first and each tile's P.V accumulates straight into it (f32 accumulators, which the
// 16-bit inputs do not notice and which keeps the kernel within the register file at head dim
// 256 without spills). Arranged for throughput:
// - K and V tiles arrive by cp.async in separate groups: the next K tile loads while this tile's
//   P.V runs, the next V tile while the next scores run (one buffer each);
// - fragments come from shared memory by ldmatrix (V transposed on the way);
// - the probabilities never leave registers: the score accumulators of two adjacent 8-key
//   blocks are, element for element, the A operand of the next m16n8k16 (rows g and g + 8,
//   keys 2t, 2t + 1 and 8 + 2t, 9 + 2t).
template <typename T, typename F, int D, int DP>
__device__ void flash_body16(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
                             T* __restrict__ out, float* __restrict__ opart, float* __restrict__ ml, int nq, int nk,
                             int keys_per_split, float scale_log2) {
    constexpr int BN = 64;
    constexpr int LD = DP + 8;  // row stride of LD / 2 == 4 (mod 32) words: conflict-free ldmatrix
    static_assert((DP / 8) % 2 == 0 && DP % 16 == 0, "head dim in pairs of 8-column blocks");
    extern __shared__ __align__(16) unsigned char smem_raw[];
    T* Qs = reinterpret_cast<T*>(smem_raw);
    T* Ks = Qs + BM * LD;
    T* Vs = Ks + BN * LD;

    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane >> 2, t = lane & 3;
    const int bh = blockIdx.y;
    const int q0 = blockIdx.x * BM;
    const int split = blockIdx.z;
    const int k_begin = split * keys_per_split;
    const int k_end = min(nk, k_begin + keys_per_split);
    q += (size_t)bh * nq * D;
    k += (size_t)bh * nk * D;
    v += (size_t)bh * nk * D;
    const int wrow = warp * 16;

    load_tile_async<T, D, DP>(Qs, LD, q, q0, BM, nq);
    load_tile_async<T, D, DP>(Ks, LD, k, k_begin, BN, k_end);
    cp_async_commit();
    load_tile_async<T, D, DP>(Vs, LD, v, k_begin, BN, k_end);
    cp_async_commit();

    // ldmatrix row addresses of this lane: Q as A (16 rows x 16 columns), K as B of two 8-key
    // blocks (keys x head dim), V transposed as B of two 8-column blocks (keys x head dim).
    const T* qa = Qs + (wrow + (lane & 15)) * LD + (lane >> 4) * 8;
    const T* kb_ptr = Ks + ((lane & 7) + (lane >> 4) * 8) * LD + ((lane >> 3) & 1) * 8;
    const T* vb_ptr = Vs + ((lane & 7) + ((lane >> 3) & 1) * 8) * LD + (lane >> 4) * 8;

    float o[DP / 8][4];
#pragma unroll
    for (int n = 0; n < DP / 8; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f;
    float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.f, l1 = 0.f;

    for (int kb = k_begin; kb < k_end; kb += BN) {
        cp_async_wait<1>();  // Q and this K tile are in (this V tile may not be)
        __syncthreads();

        float s[BN / 8][4];
#pragma unroll
        for (int j = 0; j < BN / 8; ++j) s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.f;
#pragma unroll
        for (int kk = 0; kk < DP; kk += 16) {
            uint32_t a[4];
            ldsm_x4(a, qa + kk);
#pragma unroll
            for (int j = 0; j < BN / 8; j += 2) {
                uint32_t b[4];
                ldsm_x4(b, kb_ptr + j * 8 * LD + kk);
                const uint32_t b0[2] = {b[0], b[1]}, b1[2] = {b[2], b[3]};
                F::mma(s[j], a, b0);
                F::mma(s[j + 1], a, b1);
            }
        }
        __syncthreads();  // every warp is done with this K tile
        if (kb + BN < k_end) load_tile_async<T, D, DP>(Ks, LD, k, kb + BN, BN, k_end);
        cp_async_commit();  // an empty group on the last tile keeps the wait counts uniform

        // online softmax on rows g (s[.][0..1]) and g + 8 (s[.][2..3]) of this warp
        float mx0 = m0, mx1 = m1;
#pragma unroll
        for (int j = 0; j < BN / 8; ++j) {
#pragma unroll
            for (int c = 0; c < 2; ++c) {
                const bool valid = kb + j * 8 + 2 * t + c < k_end;
                s[j][c] = valid ? s[j][c] * scale_log2 : -INFINITY;
                s[j][2 + c] = valid ? s[j][2 + c] * scale_log2 : -INFINITY;
                mx0 = fmaxf(mx0, s[j][c]);
                mx1 = fmaxf(mx1, s[j][2 + c]);
            }
        }
#pragma unroll
        for (int off = 1; off < 4; off <<= 1) {
            mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffff, mx0, off));
            mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffff, mx1, off));
        }
        const float alpha0 = exp2f(m0 - mx0), alpha1 = exp2f(m1 - mx1);
        m0 = mx0;
        m1 = mx1;
        float sum0 = 0.f, sum1 = 0.f;
        uint32_t pa[BN / 16][4];
#pragma unroll
        for (int j = 0; j < BN / 8; ++j) {
            const T p00 = F::from_f32(exp2f(s[j][0] - mx0)), p01 = F::from_f32(exp2f(s[j][1] - mx0));
            const T p10 = F::from_f32(exp2f(s[j][2] - mx1)), p11 = F::from_f32(exp2f(s[j][3] - mx1));
            // the row sum counts the probabilities as P.V will use them
            sum0 += F::to_f32(p00) + F::to_f32(p01);
            sum1 += F::to_f32(p10) + F::to_f32(p11);
            pa[j / 2][(j & 1) * 2] = F::pack(p00, p01);
            pa[j / 2][(j & 1) * 2 + 1] = F::pack(p10, p11);
        }
#pragma unroll
        for (int off = 1; off < 4; off <<= 1) {
            sum0 += __shfl_xor_sync(0xffffffff, sum0, off);
            sum1 += __shfl_xor_sync(0xffffffff, sum1, off);
        }
        l0 = l0 * alpha0 + sum0;
        l1 = l1 * alpha1 + sum1;

        cp_async_wait<1>();  // this V tile is in (the next K tile may not be)
        __syncthreads();
#pragma unroll
        for (int n = 0; n < DP / 8; ++n) {
            o[n][0] *= alpha0;
            o[n][1] *= alpha0;
            o[n][2] *= alpha1;
            o[n][3] *= alpha1;
        }
#pragma unroll
        for (int n = 0; n < DP / 8; n += 2) {
#pragma unroll
            for (int kk = 0; kk < BN / 16; ++kk) {
                uint32_t b[4];
                ldsm_x4_t(b, vb_ptr + kk * 16 * LD + n * 8);
                const uint32_t b0[2] = {b[0], b[1]}, b1[2] = {b[2], b[3]};
                F::mma(o[n], pa[kk], b0);
                F::mma(o[n + 1], pa[kk], b1);
            }
        }
        __syncthreads();  // every warp is done with this V tile
        if (kb + BN < k_end) load_tile_async<T, D, DP>(Vs, LD, v, kb + BN, BN, k_end);
        cp_async_commit();
    }
    cp_async_wait<0>();

    store_rows<T, F, D, DP>(o, m0, m1, l0, l1, out, opart, ml, bh, nq, q0 + wrow + g, q0 + wrow + g + 8, split, t);
}

// Merge the key splits of one row per block: out = sum_s 2^(m_s - M) o_s / sum_s 2^(m_s - M) l_s.
template <typename T, typename F>
__device__ void combine_body(const float* __restrict__ opart, const float* __restrict__ ml, T* __restrict__ out,
                             int splits, int rows, int d) {
    const int row = blockIdx.x;
    float mx = -INFINITY;
    for (int s = 0; s < splits; ++s) mx = fmaxf(mx, ml[((size_t)s * rows + row) * 2]);
    float denom = 0.f;
    for (int s = 0; s < splits; ++s) {
        const float m = ml[((size_t)s * rows + row) * 2];
        denom += m == -INFINITY ? 0.f : exp2f(m - mx) * ml[((size_t)s * rows + row) * 2 + 1];
    }
    const float inv = denom > 0.f ? 1.f / denom : 0.f;
    for (int c = threadIdx.x; c < d; c += blockDim.x) {
        float acc = 0.f;
        for (int s = 0; s < splits; ++s) {
            const float m = ml[((size_t)s * rows + row) * 2];
            if (m != -INFINITY) acc += exp2f(m - mx) * opart[((size_t)s * rows + row) * d + c];
        }
        out[(size_t)row * d + c] = F::from_f32(acc * inv);
    }
}

}  // namespace

#define FLASH_KERNEL(NAME, T, F, AT, D, DP, BODY)                                                             \
    extern "C" __global__ void __launch_bounds__(THREADS) NAME(const T* q, const T* k, const T* v, T* out,  \
                                                               float* opart, float* ml, int nq, int nk,      \
                                                               int keys_per_split, float scale_log2) {       \
        BODY(q, k, v, out, opart, ml, nq, nk, keys_per_split, scale_log2);                                  \
    }

// Head dims (padded to a multiple of 16): 56 Hiera-B+, 72 Hiera-L, 96 Hiera-T/S, 256 memory
// attention, and 64 / 128 for other models.
#define FLASH_DIMS(PREFIX, T, F, AT, BODY)                                              \
    FLASH_KERNEL(PREFIX##_d56, T, F, AT, 56, 64, (BODY<56, 64>))      \
    FLASH_KERNEL(PREFIX##_d64, T, F, AT, 64, 64, (BODY<64, 64>))      \
    FLASH_KERNEL(PREFIX##_d72, T, F, AT, 72, 80, (BODY<72, 80>))      \
    FLASH_KERNEL(PREFIX##_d96, T, F, AT, 96, 96, (BODY<96, 96>))      \
    FLASH_KERNEL(PREFIX##_d128, T, F, AT, 128, 128, (BODY<128, 128>)) \
    FLASH_KERNEL(PREFIX##_d256, T, F, AT, 256, 256, (BODY<256, 256>))

template <int D, int DP> constexpr auto body_bf16 = flash_body16<__nv_bfloat16, Frag<__nv_bfloat16>, D, DP>;
template <int D, int DP> constexpr auto body_f16 = flash_body16<__half, Frag<__half>, D, DP>;
template <int D, int DP> constexpr auto body_tf32 = flash_body<float, FragF32<false>, float, D, DP>;
template <int D, int DP> constexpr auto body_f32 = flash_body<float, FragF32<true>, float, D, DP>;

FLASH_DIMS(flash_attn_bf16, __nv_bfloat16, Frag<__nv_bfloat16>, uint32_t, body_bf16)
FLASH_DIMS(flash_attn_f16, __half, Frag<__half>, uint32_t, body_f16)
FLASH_DIMS(flash_attn_tf32, float, FragF32<false>, float, body_tf32)
FLASH_DIMS(flash_attn_f32, float, FragF32<true>, float, body_f32)

extern "C" __global__ void flash_combine_bf16(const float* opart, const float* ml, __nv_bfloat16* out, int splits,
                                              int rows, int d) {
    combine_body<__nv_bfloat16, Frag<__nv_bfloat16>>(opart, ml, out, splits, rows, d);
}
extern "C" __global__ void flash_combine_f16(const float* opart, const float* ml, __half* out, int splits, int rows,
                                             int d) {
    combine_body<__half, Frag<__half>>(opart, ml, out, splits, rows, d);
}
extern "C" __global__ void flash_combine_f32(const float* opart, const float* ml, float* out, int splits, int rows,
                                             int d) {
    combine_body<float, FragF32<true>>(opart, ml, out, splits, rows, d);
}
