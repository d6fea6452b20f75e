# telepipe's edits to the whisper.cpp that whisper-rs-sys compiles.
#
# whisper-rs-sys copies whisper.cpp into its OUT_DIR and configures it with CMake, forwarding
# every CMAKE_* variable of the environment; .cargo/config.toml sets CMAKE_PROJECT_INCLUDE to
# this file, so CMake runs it right after each project() call, before anything is compiled.
# The edits apply to that copy only, never to the registry's sources.
#
# Each edit names the exact text it replaces. Already applied: nothing to do. Original text
# not found exactly once (a whisper-rs-sys upgrade moved it): the build stops, so an upgrade
# cannot silently drop an edit. After changing this file, `cargo clean -p whisper-rs-sys`
# (cargo does not know the build depends on it).
#
# Measured in BENCHMARKS.md ("Offline transcription against faster-whisper", one row per
# edit); each edit says why it exists.

if(NOT PROJECT_NAME STREQUAL "whisper.cpp")
  return()
endif()

# Replaces OLD by NEW in FILE (relative to the whisper.cpp root), exactly once.
function(telepipe_edit file what old new)
  set(path "${CMAKE_SOURCE_DIR}/${file}")
  file(READ "${path}" text)
  string(FIND "${text}" "${new}" already)
  if(NOT already EQUAL -1)
    return()
  endif()
  string(FIND "${text}" "${old}" first)
  string(FIND "${text}" "${old}" last REVERSE)
  if(first EQUAL -1 OR NOT first EQUAL last)
    message(FATAL_ERROR "telepipe: cannot apply \"${what}\" to ${file}: the text it replaces "
                        "is not there exactly once (was whisper-rs-sys upgraded?). "
                        "See whisper/cpp-patches.cmake.")
  endif()
  string(REPLACE "${old}" "${new}" text "${text}")
  file(WRITE "${path}" "${text}")
  message(STATUS "telepipe: applied \"${what}\" to ${file}")
endfunction()

# 1. The encoder's self-attention scores Q·Kᵀ on BLAS.
#    Upstream multiplies a permuted (non-contiguous) f16 K by a permuted Q, which ggml's
#    BLAS backend cannot take, so every score of every head ran in ggml's f16 dot product
#    on one thread: a quarter of all CPU time for tiny.en. Copying K and Q into contiguous
#    f32 tensors first (a few MB per layer) lets the product run as one sgemm per head.
#    V is kept in f32 too: BLAS converted it from f16 back to f32 anyway.
telepipe_edit(src/whisper.cpp "encoder attention on BLAS"
[=[
                struct ggml_tensor * K =
                    ggml_permute(ctx0,
                            ggml_cast(ctx0,
                                ggml_reshape_3d(ctx0, Kcur, n_state_head, n_head, n_ctx),
                                wctx.itype),
                            0, 2, 1, 3);

                // K * Q
                struct ggml_tensor * KQ = ggml_mul_mat(ctx0, K, Q);

                struct ggml_tensor * KQ_soft_max = ggml_soft_max_ext(ctx0, KQ, nullptr, KQscale, 0.0f);

                struct ggml_tensor * V =
                    ggml_cast(ctx0,
                            ggml_permute(ctx0,
                                ggml_reshape_3d(ctx0,
                                    Vcur,
                                    n_state_head, n_head, n_ctx),
                                1, 2, 0, 3),
                            wctx.itype);
]=]
[=[
                // telepipe: contiguous f32 operands, so that BLAS takes both products.
                struct ggml_tensor * K =
                    ggml_cont(ctx0,
                        ggml_permute(ctx0,
                            ggml_reshape_3d(ctx0, Kcur, n_state_head, n_head, n_ctx),
                            0, 2, 1, 3));

                // K * Q
                struct ggml_tensor * KQ = ggml_mul_mat(ctx0, K, ggml_cont(ctx0, Q));

                struct ggml_tensor * KQ_soft_max = ggml_soft_max_ext(ctx0, KQ, nullptr, KQscale, 0.0f);

                struct ggml_tensor * V =
                    ggml_cont(ctx0,
                            ggml_permute(ctx0,
                                ggml_reshape_3d(ctx0,
                                    Vcur,
                                    n_state_head, n_head, n_ctx),
                                1, 2, 0, 3));
]=])

# 2. DTW word timing on the caller's threads.
#    Upstream computes the alignment's median filter and mean on a fresh CPU backend, which
#    starts ggml's default of 4 threads whatever the caller asked for; with one decoding
#    worker per core those threads spin against each other in ggml's barrier.
telepipe_edit(src/whisper.cpp "DTW on the caller's threads"
[=[
    ggml_backend_ptr backend { ggml_backend_init_by_type(GGML_BACKEND_DEVICE_TYPE_CPU, nullptr) };
    ggml_backend_graph_compute(backend.get(), gf);

    ggml_tensor * alignment = dtw_and_backtrace(gctx, w);
]=]
[=[
    // telepipe: the caller's thread count, not ggml's default of 4.
    ggml_graph_compute_helper(gf, n_threads, nullptr, nullptr);

    ggml_tensor * alignment = dtw_and_backtrace(gctx, w);
]=])

# 3. The encoder's two convolutions on BLAS.
#    ggml's conv_1d multiplies an f16 im2col matrix by the model's f16 kernel, a product that
#    also ran in ggml's one-thread f16 dot product. The same convolution with an f32 im2col
#    and an f32 copy of the kernel (a few hundred KB, made per encoder call) goes to BLAS.
telepipe_edit(src/whisper.cpp "f32 convolution helper"
[=[
static struct ggml_cgraph * whisper_build_graph_conv(
]=]
[=[
// telepipe: ggml_conv_1d_ph with f32 operands, so that BLAS takes its product.
static struct ggml_tensor * telepipe_conv_1d_ph_f32(
        struct ggml_context * ctx, struct ggml_tensor * kernel, struct ggml_tensor * input, int stride) {
    struct ggml_tensor * im2col = ggml_im2col(ctx, kernel, input, stride, 0, kernel->ne[0] / 2, 0, 1, 0, false, GGML_TYPE_F32);
    struct ggml_tensor * product = ggml_mul_mat(ctx,
            ggml_reshape_2d(ctx, im2col, im2col->ne[0], im2col->ne[2] * im2col->ne[1]),
            ggml_reshape_2d(ctx, ggml_cast(ctx, kernel, GGML_TYPE_F32), kernel->ne[0] * kernel->ne[1], kernel->ne[2]));
    return ggml_reshape_3d(ctx, product, im2col->ne[1], kernel->ne[2], im2col->ne[2]);
}

static struct ggml_cgraph * whisper_build_graph_conv(
]=])
telepipe_edit(src/whisper.cpp "encoder convolutions on BLAS"
[=[
            cur = ggml_conv_1d_ph(ctx0, model.e_conv_1_w, mel, 1, 1);
            cur = ggml_add(ctx0, cur, model.e_conv_1_b);

            cur = ggml_gelu(ctx0, cur);

            cur = ggml_conv_1d_ph(ctx0, model.e_conv_2_w, cur, 2, 1);
]=]
[=[
            cur = telepipe_conv_1d_ph_f32(ctx0, model.e_conv_1_w, mel, 1);
            cur = ggml_add(ctx0, cur, model.e_conv_1_b);

            cur = ggml_gelu(ctx0, cur);

            cur = telepipe_conv_1d_ph_f32(ctx0, model.e_conv_2_w, cur, 2);
]=])

# 4. Logits only for the token that needs them.
#    Upstream projects every token of a batch onto the 51,864-word vocabulary, but reads back
#    only the rows the batch flags. A prompt batch (the vocabulary prompt, 60-odd tokens, once
#    per chunk) and the DTW pass (every token of a chunk again, which reads no logits at all)
#    flag only their last token, so nearly all of that product, the largest in the decoder,
#    was thrown away. Such a batch now computes the last row only. The worst-case graph, which
#    sizes the buffers, is left whole.
telepipe_edit(src/whisper.cpp "logits for the last token only"
[=[
    //cur = ggml_view_2d(ctx0, cur, cur->ne[0], 1, cur->nb[1], (cur->ne[1] - 1)*cur->nb[1]);

    struct ggml_tensor * logits = ggml_mul_mat(ctx0, model.d_te, cur);
]=]
[=[
    //cur = ggml_view_2d(ctx0, cur, cur->ne[0], 1, cur->nb[1], (cur->ne[1] - 1)*cur->nb[1]);

    // telepipe: only the last row when the batch reads only the last row.
    bool only_last_logits = !worst_case && batch.n_tokens > 1 && batch.logits[batch.n_tokens - 1] != 0;
    for (int i = 0; only_last_logits && i < batch.n_tokens - 1; ++i) {
        only_last_logits = batch.logits[i] == 0;
    }
    if (only_last_logits) {
        cur = ggml_view_2d(ctx0, cur, cur->ne[0], 1, cur->nb[1], (cur->ne[1] - 1)*cur->nb[1]);
    }

    struct ggml_tensor * logits = ggml_mul_mat(ctx0, model.d_te, cur);
]=])
telepipe_edit(src/whisper.cpp "read the last-token logits"
[=[
        ggml_backend_tensor_get(logits, logits_out.data() + (n_vocab*i), sizeof(float)*(n_vocab*i), sizeof(float)*n_vocab);
]=]
[=[
        // telepipe: a last-token-only graph has one row of logits.
        const int64_t row = logits->ne[1] == n_tokens ? i : 0;
        ggml_backend_tensor_get(logits, logits_out.data() + (n_vocab*i), sizeof(float)*(n_vocab*row), sizeof(float)*n_vocab);
]=])

# 5. The mel spectrogram's DFT without an integer division per term.
#    whisper.cpp's FFT splits its 400-point frames down to 25-point DFTs, whose inner loop
#    took a modulo per multiply-add to index its cosine table; 5 % of all CPU time went
#    there. Stepping the index and wrapping it reads the very same table entries in the same
#    order, so the spectrogram is bit-identical.
telepipe_edit(src/whisper.cpp "DFT index stepping"
[=[
        for (int n = 0; n < N; n++) {
            int idx = (k * n * sin_cos_step) % (SIN_COS_N_COUNT); // t = 2*M_PI*k*n/N
            re += in[n]*global_cache.cos_vals[idx]; // cos(t)
            im -= in[n]*global_cache.sin_vals[idx]; // sin(t)
        }
]=]
[=[
        // telepipe: idx == (k * n * sin_cos_step) % SIN_COS_N_COUNT, stepped instead of divided.
        const int idx_step = (k * sin_cos_step) % SIN_COS_N_COUNT;
        int idx = 0;
        for (int n = 0; n < N; n++) {
            re += in[n]*global_cache.cos_vals[idx]; // cos(t)
            im -= in[n]*global_cache.sin_vals[idx]; // sin(t)
            idx += idx_step;
            if (idx >= SIN_COS_N_COUNT) {
                idx -= SIN_COS_N_COUNT;
            }
        }
]=])

# 6. DTW's median filter without a heap vector and a sort per audio frame.
#    The filter (width 7 over the 1,500 audio frames, for every token and alignment head)
#    pushed 7 strided reads into a vector and sorted it for every output value: 4 % of all
#    CPU time. Each row is now read once into a reflect-padded buffer and each median of the
#    width whisper.cpp uses (7) taken by a 13-exchange selection network (Devillard's opt_med7;
#    checked against sorting on all 5,040 orderings and all 2,187 vectors over {0,1,2}), other
#    widths by nth_element; the values are the same medians.
telepipe_edit(src/whisper.cpp "median of 7"
[=[
static void median_filter(struct ggml_tensor * dst , const struct ggml_tensor * a, int ith, int /*nth*/, void * userdata) {
]=]
[=[
// telepipe: the median of p[0..7) by a selection network (Devillard, "Fast median search").
static inline float telepipe_median_of_7(const float * in) {
    float p[7] = { in[0], in[1], in[2], in[3], in[4], in[5], in[6] };
    auto sort2 = [&p](int a, int b) { const float lo = std::min(p[a], p[b]); p[b] = std::max(p[a], p[b]); p[a] = lo; };
    sort2(0, 5); sort2(0, 3); sort2(1, 6); sort2(2, 4); sort2(0, 1); sort2(3, 5); sort2(2, 6);
    sort2(2, 3); sort2(3, 6); sort2(4, 5); sort2(1, 4); sort2(1, 3); sort2(3, 4);
    return p[3];
}

static void median_filter(struct ggml_tensor * dst , const struct ggml_tensor * a, int ith, int /*nth*/, void * userdata) {
]=])
telepipe_edit(src/whisper.cpp "DTW median filter per row"
[=[
    std::vector<float> filter;
    filter.reserve(filter_width);
    for (int64_t i = 0; i < a->ne[0]; ++i) {
        for (int64_t j = 0; j < a->ne[1]; ++j) {
            for (int64_t k = 0; k < a->ne[2]; ++k) {
                for (int64_t off = -filter_width/2; off <= filter_width/2; ++off) {
                    // "reflect" padding
                    int64_t idx = k + off;
                    if (idx < 0) {
                        idx = -idx;
                    } else if (idx >= a->ne[2]) {
                        idx = 2*(a->ne[2] - 1) - idx;
                    }

                    filter.push_back(whisper_get_f32_nd(a, i, j, idx, 0));
                }
                std::sort(filter.begin(), filter.end());
                const float v = filter[filter.size()/2];
                whisper_set_f32_nd(dst, i, j, k, 0, v);
                filter.clear();
            }
        }
    }
]=]
[=[
    // telepipe: one reflect-padded copy of each row, then the median of each window.
    const int64_t n = a->ne[2];
    const int half = filter_width/2;
    std::vector<float> row(n + 2*half);
    std::vector<float> window(filter_width);
    for (int64_t i = 0; i < a->ne[0]; ++i) {
        for (int64_t j = 0; j < a->ne[1]; ++j) {
            for (int64_t k = 0; k < n; ++k) {
                row[half + k] = whisper_get_f32_nd(a, i, j, k, 0);
            }
            // "reflect" padding: index -o reads o, index n-1+o reads n-1-o
            for (int o = 1; o <= half; ++o) {
                row[half - o] = row[half + o];
                row[half + n - 1 + o] = row[half + n - 1 - o];
            }
            for (int64_t k = 0; k < n; ++k) {
                float median;
                if (filter_width == 7) {
                    median = telepipe_median_of_7(&row[k]);
                } else {
                    std::copy(row.begin() + k, row.begin() + k + filter_width, window.begin());
                    std::nth_element(window.begin(), window.begin() + half, window.end());
                    median = window[half];
                }
                whisper_set_f32_nd(dst, i, j, k, 0, median);
            }
        }
    }
]=])

# 7. The softmax's row maximum in AVX-512.
#    ggml takes a row's maximum one float at a time, a dependent chain of 1,500 comparisons
#    per row of attention scores (ggml's C cannot let the compiler reorder them), and the
#    encoder has 36,000 such rows per chunk. Sixteen lanes at a time give the same maximum.
telepipe_edit(ggml/src/ggml-cpu/vec.h "vectorised row maximum"
[=[
inline static void ggml_vec_max_f32(const int n, float * s, const float * x) {
#ifndef GGML_USE_ACCELERATE
    float max = -INFINITY;
    for (int i = 0; i < n; ++i) {
        max = MAX(max, x[i]);
    }
    *s = max;
]=]
[=[
inline static void ggml_vec_max_f32(const int n, float * s, const float * x) {
#ifndef GGML_USE_ACCELERATE
    float max = -INFINITY;
    int i = 0;
#if defined(__AVX512F__)
    // telepipe: sixteen lanes at a time.
    if (n >= 16) {
        __m512 lanes = _mm512_set1_ps(-INFINITY);
        for (; i + 15 < n; i += 16) {
            lanes = _mm512_max_ps(lanes, _mm512_loadu_ps(x + i));
        }
        max = _mm512_reduce_max_ps(lanes);
    }
#endif
    for (; i < n; ++i) {
        max = MAX(max, x[i]);
    }
    *s = max;
]=])

# 8. q8_0 dot products with four accumulators.
#    The decoder's matrix-vector products (the vocabulary projection above all, 51,864 rows
#    per token) run in ggml_vec_dot_q8_0_q8_0, whose AVX2 loop adds every 32-value block into
#    one accumulator: a chain of dependent FMAs, one block per FMA latency. Four accumulators
#    let four blocks be in flight; the sum differs only in float rounding order.
telepipe_edit(ggml/src/ggml-cpu/arch/x86/quants.c "q8_0 dot with four accumulators"
[=[
    // Initialize accumulator with zeros
    __m256 acc = _mm256_setzero_ps();

    // Main loop
    for (; ib < nb; ++ib) {
        // Compute combined scale for the block
        const __m256 d = _mm256_set1_ps(GGML_CPU_FP16_TO_FP32(x[ib].d) * GGML_CPU_FP16_TO_FP32(y[ib].d));
        __m256i qx = _mm256_loadu_si256((const __m256i *)x[ib].qs);
        __m256i qy = _mm256_loadu_si256((const __m256i *)y[ib].qs);

        const __m256 q = mul_sum_i8_pairs_float(qx, qy);

        // Multiply q with scale and accumulate
        acc = _mm256_fmadd_ps( d, q, acc );
    }

    sumf = hsum_float_8(acc);
]=]
[=[
    // telepipe: four accumulators, so that four blocks' FMAs are in flight at once.
    __m256 accs[4] = { _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps() };

    for (; ib + 3 < nb; ib += 4) {
        for (int u = 0; u < 4; ++u) {
            const __m256 d = _mm256_set1_ps(GGML_CPU_FP16_TO_FP32(x[ib + u].d) * GGML_CPU_FP16_TO_FP32(y[ib + u].d));
            const __m256i qx = _mm256_loadu_si256((const __m256i *)x[ib + u].qs);
            const __m256i qy = _mm256_loadu_si256((const __m256i *)y[ib + u].qs);
            accs[u] = _mm256_fmadd_ps(d, mul_sum_i8_pairs_float(qx, qy), accs[u]);
        }
    }
    for (; ib < nb; ++ib) {
        const __m256 d = _mm256_set1_ps(GGML_CPU_FP16_TO_FP32(x[ib].d) * GGML_CPU_FP16_TO_FP32(y[ib].d));
        const __m256i qx = _mm256_loadu_si256((const __m256i *)x[ib].qs);
        const __m256i qy = _mm256_loadu_si256((const __m256i *)y[ib].qs);
        accs[0] = _mm256_fmadd_ps(d, mul_sum_i8_pairs_float(qx, qy), accs[0]);
    }

    sumf = hsum_float_8(_mm256_add_ps(_mm256_add_ps(accs[0], accs[1]), _mm256_add_ps(accs[2], accs[3])));
]=])

# 9. The encoder's weight products on AMX, whatever their inner size.
#    ggml's AMX kernels (int8 tiles, Sapphire Rapids and later) refuse any weight whose rows
#    are not a multiple of 2,048 values, a stopgap upstream added while chasing wrong Q4_0
#    and Q4_1 results (llama.cpp #16315); whisper's rows are 384 to 2,048 values, so AMX never
#    ran. The q8_0 kernel walks a row in whole 32-value blocks (KB = K / 32), so whole blocks
#    are all it needs; every other type keeps upstream's condition. Checked by WER on both
#    models, with and without the prompt (BENCHMARKS.md). On machines without AMX ggml does
#    not offer the AMX buffer and nothing changes.
telepipe_edit(ggml/src/ggml-cpu/amx/amx.cpp "AMX for whisper's row sizes"
[=[
            op->src[0]->ne[0] % (TILE_K * 2 * 32) == 0 && // TODO: not sure if correct (https://github.com/ggml-org/llama.cpp/pull/16315)
]=]
[=[
            op->src[0]->ne[0] % TILE_K == 0 && // telepipe: whole q8_0 blocks are enough
            (op->src[0]->type == GGML_TYPE_Q8_0 || op->src[0]->ne[0] % (TILE_K * 2 * 32) == 0) &&
]=])

# 10. GELU sixteen lanes at a time.
#     ggml looks GELU up in a 65,536-entry fp16 table one value at a time (a float→fp16
#     conversion, a gather and a conversion back per value); the encoder applies it to
#     1,500 × 1,536 values per layer. 0.5·x·(1 + tanh u) = x / (1 + e^(−2u)) with ggml's own
#     vector exp is exact to float rounding rather than to fp16.
telepipe_edit(ggml/src/ggml-cpu/vec.h "vectorised GELU"
[=[
#endif // __ARM_NEON / __AVX2__ / __SSE2__ / __riscv_v_intrinsic
]=]
[=[
#endif // __ARM_NEON / __AVX2__ / __SSE2__ / __riscv_v_intrinsic

// telepipe: GELU (tanh form) as x / (1 + e^(-2u)), u = sqrt(2/pi)·x·(1 + 0.044715·x²).
inline static void telepipe_vec_gelu_f32(const int n, float * y, const float * x) {
    int i = 0;
#if defined(__AVX512F__) && defined(__AVX512DQ__)
    const __m512 minus_two_c = _mm512_set1_ps(-2.0f*SQRT_2_OVER_PI);
    const __m512 coef_a = _mm512_set1_ps(GELU_COEF_A);
    const __m512 one = _mm512_set1_ps(1.0f);
    for (; i + 15 < n; i += 16) {
        const __m512 v = _mm512_loadu_ps(x + i);
        const __m512 inner = _mm512_fmadd_ps(coef_a, _mm512_mul_ps(v, v), one);
        const __m512 e = ggml_v_expf(_mm512_mul_ps(_mm512_mul_ps(minus_two_c, v), inner));
        _mm512_storeu_ps(y + i, _mm512_div_ps(v, _mm512_add_ps(one, e)));
    }
#endif
    for (; i < n; ++i) {
        y[i] = ggml_gelu_f32(x[i]);
    }
}
]=])
telepipe_edit(ggml/src/ggml-cpu/ops.cpp "use the vectorised GELU"
[=[
    for (int i1 = ir0; i1 < ir1; i1++) {
        ggml_vec_gelu_f32(nc,
]=]
[=[
    for (int i1 = ir0; i1 < ir1; i1++) {
        telepipe_vec_gelu_f32(nc,
]=])

# 11. Attention scores of decoded tokens without a call per score.
#     Each decoded token's cross-attention scores are 1,500 keys × n_head dot products of 64
#     fp16 values with the query; ggml converts the query to fp16, then calls its generic dot
#     product through a function pointer once per key, and a 64-value dot is mostly call and
#     horizontal-sum overhead. This path takes f16 rows of at most 256 values times f32
#     columns, reads the query as it is (f32, so no rounding to fp16) and keeps the loop
#     inlined, so consecutive keys overlap in the pipeline.
telepipe_edit(ggml/src/ggml-cpu/ggml-cpu.c "short f16 rows kernel"
[=[
void ggml_compute_forward_mul_mat(
        const struct ggml_compute_params * params,
              struct ggml_tensor * dst) {
]=]
[=[
#if defined(__AVX512F__)
// telepipe: dot product of n (a multiple of 16) fp16 values with n f32 values.
static inline float telepipe_dot_f16_f32(const int64_t n, const ggml_fp16_t * x, const float * y) {
    __m512 acc0 = _mm512_setzero_ps();
    __m512 acc1 = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        acc0 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(x + i))), _mm512_loadu_ps(y + i), acc0);
        acc1 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(x + i + 16))), _mm512_loadu_ps(y + i + 16), acc1);
    }
    if (i < n) {
        acc0 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(x + i))), _mm512_loadu_ps(y + i), acc0);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
}

// telepipe: f16 × f32 products whose rows are short (attention heads); false if not that.
static bool telepipe_mul_mat_f16_short_rows(const struct ggml_compute_params * params, struct ggml_tensor * dst) {
    const struct ggml_tensor * src0 = dst->src[0];
    const struct ggml_tensor * src1 = dst->src[1];

    GGML_TENSOR_BINARY_OP_LOCALS

    if (src0->type != GGML_TYPE_F16 || src1->type != GGML_TYPE_F32 || dst->type != GGML_TYPE_F32 ||
        ne00 % 16 != 0 || ne00 > 256 || nb00 != sizeof(ggml_fp16_t) || nb10 != sizeof(float) ||
        nb0 != sizeof(float) || ne12 % ne02 != 0 || ne13 % ne03 != 0) {
        return false;
    }

    // Every output value is one dot product; threads take consecutive runs of them, rows
    // of src0 fastest, so a run reuses one column of src1.
    const int64_t total = ne01*ne11*ne12*ne13;
    const int64_t per_thread = (total + params->nth - 1)/params->nth;
    const int64_t first = MIN(per_thread*params->ith, total);
    const int64_t last = MIN(first + per_thread, total);

    for (int64_t k = first; k < last; ) {
        const int64_t column = k/ne01;
        const int64_t i01_first = k%ne01;
        const int64_t i01_last = MIN(ne01, i01_first + (last - k));

        const int64_t i11 = column%ne11;
        const int64_t i12 = (column/ne11)%ne12;
        const int64_t i13 = column/(ne11*ne12);

        const char * rows = (const char *) src0->data + (i12/(ne12/ne02))*nb02 + (i13/(ne13/ne03))*nb03;
        const float * y = (const float *) ((const char *) src1->data + i11*nb11 + i12*nb12 + i13*nb13);
        float * out = (float *) ((char *) dst->data + i11*nb1 + i12*nb2 + i13*nb3);

        for (int64_t i01 = i01_first; i01 < i01_last; ++i01) {
            out[i01] = telepipe_dot_f16_f32(ne00, (const ggml_fp16_t *) (rows + i01*nb01), y);
        }
        k += i01_last - i01_first;
    }
    return true;
}
#endif

void ggml_compute_forward_mul_mat(
        const struct ggml_compute_params * params,
              struct ggml_tensor * dst) {
#if defined(__AVX512F__)
    if (telepipe_mul_mat_f16_short_rows(params, dst)) {
        return;
    }
#endif
]=])

# 12. Log-probabilities and probabilities of each decoded token with a vector exp.
#     Every decoded token takes two passes of expf over the 51,864 logits (log-softmax, then
#     the probabilities), one libm call per value. ggml-cpu, compiled into the same library,
#     has a vectorised exp behind ggml_vec_soft_max_f32 (y = e^(x − max), returns the sum);
#     e^(−∞) is 0 there as well, so suppressed tokens stay at probability 0.
telepipe_edit(src/whisper.cpp "log-softmax with ggml's vector exp"
[=[
    const float logit_max = *std::max_element(logits.begin(), logits.end());
    float logsumexp = 0.0f;
    for (int i = 0; i < n_logits; ++i) {
        if (logits[i] > -INFINITY) {
            logsumexp += expf(logits[i] - logit_max);
        }
    }
    logsumexp = logf(logsumexp) + logit_max;

    for (int i = 0; i < n_logits; ++i) {
        if (logits[i] > -INFINITY) {
            logprobs[i] = logits[i] - logsumexp;
        } else {
            logprobs[i] = -INFINITY;
        }
    }
}
]=]
[=[
    const float logit_max = *std::max_element(logits.begin(), logits.end());
    // telepipe: e^(x − max) into logprobs as scratch, vectorised; overwritten just below.
    const double sum = ggml_vec_soft_max_f32(n_logits, logprobs.data(), logits.data(), logit_max);
    const float logsumexp = logf((float) sum) + logit_max;

    for (int i = 0; i < n_logits; ++i) {
        if (logits[i] > -INFINITY) {
            logprobs[i] = logits[i] - logsumexp;
        } else {
            logprobs[i] = -INFINITY;
        }
    }
}
]=])
telepipe_edit(src/whisper.cpp "probabilities with ggml's vector exp"
[=[
          std::vector<float> & probs)     {
    for (int i = 0; i < n_logits; ++i) {
        if (logits[i] == -INFINITY) {
            probs[i] = 0.0f;
        } else {
            probs[i] = expf(logprobs[i]);
        }
    }
}
]=]
[=[
          std::vector<float> & probs)     {
    // telepipe: logprobs is −∞ exactly where logits is, and e^(−∞) = 0.
    (void) logits;
    ggml_vec_soft_max_f32(n_logits, probs.data(), logprobs.data(), 0.0f);
}
]=])
telepipe_edit(src/whisper.cpp "declare ggml's vector softmax"
[=[
static void whisper_compute_logprobs(
]=]
[=[
// telepipe: ggml-cpu's vectorised e^(x − max) (ggml/src/ggml-cpu/vec.cpp), linked in already.
extern "C" double ggml_vec_soft_max_f32(const int n, float * y, const float * x, float max);

static void whisper_compute_logprobs(
]=])
