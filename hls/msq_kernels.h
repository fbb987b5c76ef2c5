// MSQ HLS kernel library: the layers of a mixed-scheme (SP2 + fixed-point) network as the
// folded streaming architecture of docs/hls.md. Every generated MSQ project includes a copy.
//
// Arithmetic (docs/ir.md, msq/ir/arith.py), bit for bit:
//   acc_r = sum_k x_k * w_rk                               exact, in an ap_int<ACC_BITS>
//   y_r   = clamp((acc_r * mult_r + bias_r + 2^(shift_r-1)) >> shift_r, OUT_LO, OUT_HI)  (shift_r >= 1)
//   y_r   = clamp(acc_r * mult_r + bias_r, OUT_LO, OUT_HI)                                (shift_r == 0)
// The bias enters after the multiplier, in 2^-shift output steps (the A*B+C of one DSP48).
//
// Stream words: every stream between stages carries N elements of B bits packed in an
// ap_uint<N*B>, element j in bits [j*B, (j+1)*B), two's complement for signed formats (the
// layout of the top-level AXI-Stream beats, which add zero padding up to whole bytes).
//
// A layer is described by a configuration struct L (generated per layer) holding its types,
// shapes, plan (SIMD, PE_SP2, PE_FIX, PE_FIX_DSP, PE_HI, NF, SF) and constant tables; the stages below are
// templates on L. Every stage is a DATAFLOW process: INLINE off, one labelled II=1 loop.
//
// Pragmas, explained once:
//   INLINE off        keep each stage a separate process of the top function's DATAFLOW, so the
//                     layers run concurrently, connected by FIFOs of packed words.
//   PIPELINE II=1     start one loop iteration per clock: one SIMD word per engine per cycle.
//   UNROLL            replicate the loop body: the SIMD products of a lane, the PE lanes of an
//                     engine, the shared requantizers.
//   ARRAY_PARTITION complete   registers for the accumulators, the output pixel, the held dot
//                     products, so every unrolled lane reaches its own in the same cycle.
//   ARRAY_RESHAPE complete dim=2   one ROM word holds all lanes of a step's weights (or of a
//                     requantization step's parameters): one read per engine per cycle; the C
//                     code slices it lane by lane (no C variable wider than a lane's SIMD codes).
//   BIND_STORAGE      weight ROMs: rom_1p, impl chosen per layer by the generator (lutram when
//                     tiny, bram otherwise), in the layer's generated process function; line
//                     buffers: ram_s2p (1 write + 1 read port, what a sliding window needs).
//   BIND_OP           the requantizer's multiply on DSPs (impl=dsp); the fixed-point weight product
//                     on a DSP (impl=dsp) in the lanes the plan puts on DSPs (and every lane of the
//                     high-precision rows), in LUTs (impl=fabric) in the others.
#ifndef MSQ_KERNELS_H
#define MSQ_KERNELS_H

#include "msq_widths.h"  // generated: MULT_BITS, SHIFT_BITS; AP_INT_MAX_W (before ap_int.h)

#include <ap_int.h>
#include <hls_stream.h>

// The top-level ports are AXI-Stream beats with side channels, ap_axiu<W,0,0,0> (data, keep, strb,
// last), as an AXI DMA expects. Vitis HLS has the header; a plain g++ C simulation (the ap_types
// of hls4ml have no ap_axi_sdata.h) uses the same four members declared here.
#if __has_include(<ap_axi_sdata.h>)
#include <ap_axi_sdata.h>
#else
template <int D, int U, int TI, int TD> struct ap_axiu;
template <int D> struct ap_axiu<D, 0, 0, 0> {
    ap_uint<D> data;
    ap_uint<(D + 7) / 8> keep;
    ap_uint<(D + 7) / 8> strb;
    ap_uint<1> last;
};
#endif

#if defined(MSQ_TRACE) && !defined(__SYNTHESIS__)
#include <cstdio>
#endif

// Loop labels name the loops in Vitis HLS reports and directives; g++ never jumps to them.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-label"
#endif

namespace msq {

typedef ap_int<MULT_BITS> mult_t;    // signed requantization multiplier (msq_widths.h)
typedef ap_uint<SHIFT_BITS> shift_t; // requantization shift (msq_widths.h)

// Constant tables are stored as plain C integers (the *_word_t types, and the weight ROMs as
// chunks of 8/16/32/64 bits) and converted to exact-width ap_uint where they are read: g++ needs
// ~30 s per few thousand ap_int array initializers, plain integers compile at once.
typedef short mult_word_t;
typedef unsigned char shift_word_t;

// ---------------------------------------------------------------------------------------------
// Packed words: element i of N-bit fields.
template <int N, int W>
ap_uint<N> field(ap_uint<W> word, int i) {
#pragma HLS INLINE
    return word.range(i * N + N - 1, i * N);
}

template <int N, int W, class T>
void set_field(ap_uint<W>& word, int i, T value) {
#pragma HLS INLINE
    word.range(i * N + N - 1, i * N) = ap_uint<N>(value);
}

// One lane's word of a ROM row: CHUNKS plain integers of CHUNK_BITS each from row[first],
// concatenated (the first chunk lowest). A ROM row holds every lane of an engine for one step.
template <int W, int CHUNK_BITS, int CHUNKS, class C>
ap_uint<W> rom_word(const C row[], int first) {
#pragma HLS INLINE
    ap_uint<CHUNKS * CHUNK_BITS> word = 0;
    for (int c = 0; c < CHUNKS; c++) {
#pragma HLS UNROLL
        word.range(c * CHUNK_BITS + CHUNK_BITS - 1, c * CHUNK_BITS) = row[first + c];
    }
    return ap_uint<W>(word);
}

// ---------------------------------------------------------------------------------------------
// C-simulation trace: with -DMSQ_TRACE every layer output element is also written to
// trace_file as "<layer index> <value>" (the testbench defines and opens the file), in stream
// order. Absent from synthesis.
#if defined(MSQ_TRACE) && !defined(__SYNTHESIS__)
extern std::FILE* trace_file;
#endif

template <class L, int N, class W>
void trace_word(W word) {
#pragma HLS INLINE
#if defined(MSQ_TRACE) && !defined(__SYNTHESIS__)
    for (int i = 0; i < N; i++) {
        const typename L::out_t v = typename L::out_t(field<L::OUT_BITS>(word, i));
        if (trace_file) std::fprintf(trace_file, "%d %lld\n", L::LAYER, (long long)v.to_int64());
    }
#else
    (void)word;
#endif
}

// ---------------------------------------------------------------------------------------------
// Requantization: add the bias after the multiplier, round half up, then clamp. L::rq_t is the
// datapath width of msq/ir/arith.py requant_datapath_bits: it holds acc * mult, + bias, and the
// rounding term 2^(shift-1) on its own, so nothing wraps. The multiply is bound to a DSP.
template <class L>
typename L::out_t requantize(typename L::acc_t acc, mult_t mult, typename L::rq_t bias, shift_t shift) {
#pragma HLS INLINE
    typedef typename L::rq_t rq_t;
    const int n = shift;
    rq_t prod = acc * mult;
#pragma HLS BIND_OP variable=prod op=mul impl=dsp
    rq_t half = (n == 0) ? rq_t(0) : rq_t(rq_t(1) << (n - 1));
    rq_t y = (rq_t(prod + bias) + half) >> n;
    if (y < L::OUT_LO) return typename L::out_t(L::OUT_LO);
    if (y > L::OUT_HI) return typename L::out_t(L::OUT_HI);
    return typename L::out_t(y);
}

// ---------------------------------------------------------------------------------------------
// BEGIN SP2 ENGINE
// An SP2 weight is stored as its m-bit hardware code: sign in bit M1+M2, k1 in the M1 bits
// below, k2 in the low M2 bits. Its integer value is +-(2^(E-k1) + 2^(E-k2)), an index of 0
// switching its term off. The product x * w is two shifts of x and one add (and a negation):
// no multiplier exists in this section.
template <int E, int M1, int M2, class X>
ap_int<X::width + E + 2> sp2_product(X x, ap_uint<1 + M1 + M2> code) {
#pragma HLS INLINE
    typedef ap_int<X::width + E + 2> prod_t;
    const prod_t xs = x;
    const bool negative = code[M1 + M2];
    const int k1 = code.range(M1 + M2 - 1, M2).to_uint();
    const int k2 = (M2 == 0) ? 0 : int(code.range(M2 > 0 ? M2 - 1 : 0, 0).to_uint());  // 2-bit SP2 has no 2nd term
    const prod_t t1 = (k1 == 0) ? prod_t(0) : prod_t(xs << (E - k1));
    const prod_t t2 = (k2 == 0) ? prod_t(0) : prod_t(xs << (E - k2));
    const prod_t mag = t1 + t2;
    return negative ? prod_t(-mag) : mag;
}

// One SP2 lane for one step: the SIMD products of the input word and the lane's codes, summed
// (an adder tree of shift-adds).
template <class L>
typename L::acc_t sp2_dot(typename L::in_word_t x, ap_uint<L::SP2_LANE_BITS> codes) {
#pragma HLS INLINE
    typename L::acc_t sum = 0;
    for (int k = 0; k < L::SIMD; k++) {
#pragma HLS UNROLL
        const typename L::in_t xk = typename L::in_t(field<L::IN_BITS>(x, k));
        sum += sp2_product<L::SP2_E, L::SP2_M1, L::SP2_M2>(xk, field<L::CODE_BITS>(codes, k));
    }
    return sum;
}
// END SP2 ENGINE

// ---------------------------------------------------------------------------------------------
// Fixed-point engine: the weight product is an integer multiply, bound to a DSP slice or built
// in LUTs (fabric), as the plan places the lane.
template <class X, class W>
ap_int<X::width + W::width + 1> fixed_product_dsp(X x, W w) {
#pragma HLS INLINE
    ap_int<X::width + W::width + 1> p = x * w;
#pragma HLS BIND_OP variable=p op=mul impl=dsp
    return p;
}

template <class X, class W>
ap_int<X::width + W::width + 1> fixed_product_fabric(X x, W w) {
#pragma HLS INLINE
    ap_int<X::width + W::width + 1> p = x * w;
#pragma HLS BIND_OP variable=p op=mul impl=fabric
    return p;
}

// One fixed lane for one step: the SIMD products of the input word and the lane's weights of
// type W (L::fix_t, or L::hi_t for the high-precision rows), summed in the engine's accumulator A.
template <class L, class W, class A, bool ON_DSP>
A fix_dot(typename L::in_word_t x, ap_uint<L::SIMD * W::width> weights) {
#pragma HLS INLINE
    A sum = 0;
    for (int k = 0; k < L::SIMD; k++) {
#pragma HLS UNROLL
        const typename L::in_t xk = typename L::in_t(field<L::IN_BITS>(x, k));
        const W wk = W(field<W::width>(weights, k));
        sum += ON_DSP ? fixed_product_dsp(xk, wk) : fixed_product_fabric(xk, wk);
    }
    return sum;
}

// ---------------------------------------------------------------------------------------------
// The matrix-vector unit of a dense or conv layer: one flattened II=1 loop over
// (pixel, fold, step). On fold 0 it reads the pixel's SIMD words and stores them; folds 1..NF-1
// replay them. Every step, SP2 lane i accumulates row sp2_rows[f*PE_SP2 + i] and each fixed lane
// the row of its engine (DSP lanes j < PE_FIX_DSP, LUT lanes after them; ROM words: the lanes'
// codes or weights of this step), and each high-precision lane (HI_BITS-bit weights, on DSPs,
// accumulated in its own hi_acc_t) a high row. After the
// last step the lanes' dot products move to `hold` (SP2, fixed, then high lanes), and NQ shared
// requantizers turn them into outputs while the next fold accumulates
// (NQ*QS >= PE_SP2 + PE_FIX + PE_HI with QS <= SF); each result
// goes to its IR row of the output pixel `y`, which leaves as one word once its last fold is
// requantized. The loop runs PIX*NF*SF cycles plus QS to requantize the last fold.
// Inlined into the layer's generated process function (INLINE off there), which owns the ROMs as
// local static const arrays and binds them (BIND_STORAGE needs a literal impl, chosen per layer).
template <class L>
void mvau(hls::stream<typename L::in_word_t>& in, hls::stream<typename L::out_word_t>& out,
          const typename L::sp2_chunk_t sp2_w[L::SP2_DEPTH][L::SP2_ROW],
          const typename L::fix_chunk_t fix_w[L::FIX_DEPTH][L::FIX_ROW],
          const typename L::hi_chunk_t hi_w[L::HI_DEPTH][L::HI_ROW],
          const typename L::bias_word_t rq_bias[L::RQ_DEPTH][L::NQ],
          const mult_word_t rq_mult[L::RQ_DEPTH][L::NQ],
          const shift_word_t rq_shift[L::RQ_DEPTH][L::NQ],
          const unsigned short rq_row[L::RQ_DEPTH][L::NQ]) {
#pragma HLS INLINE
    typedef typename L::acc_t acc_t;
    typedef typename L::hi_acc_t hi_acc_t;
    static const int LANES = L::PE_SP2 + L::PE_FIX + L::PE_HI;
    typename L::in_word_t xbuf[L::SF];  // the pixel's input words, replayed over the folds
    acc_t acc_sp2[L::PE_SP2 > 0 ? L::PE_SP2 : 1];
    acc_t acc_fix[L::PE_FIX > 0 ? L::PE_FIX : 1];
    hi_acc_t acc_hi[L::PE_HI > 0 ? L::PE_HI : 1];
    acc_t hold[LANES];                  // last fold's dot products, being requantized
    typename L::out_t y[L::ROWS];       // the output pixel, in IR row order
#pragma HLS ARRAY_PARTITION variable=acc_sp2 complete
#pragma HLS ARRAY_PARTITION variable=acc_fix complete
#pragma HLS ARRAY_PARTITION variable=acc_hi complete
#pragma HLS ARRAY_PARTITION variable=hold complete
#pragma HLS ARRAY_PARTITION variable=y complete
    int s = 0, f = 0, widx = 0;  // step, fold, weight ROM address f*SF + s
    int q = L::QS, qidx = 0;     // requantization step of the held fold (QS: idle), table address
    bool last_fold_held = false;
    mvau_fold_step:
    for (int i = 0; i < L::PIX * L::NF * L::SF + L::QS; i++) {
#pragma HLS PIPELINE II=1
        // requantize NQ held dot products, then shift the next NQ into place
        if (q < L::QS) {
            for (int u = 0; u < L::NQ; u++) {
#pragma HLS UNROLL
                const int row = rq_row[qidx][u];
                if (row < L::ROWS) {
                    y[row] = requantize<L>(hold[u], rq_mult[qidx][u], rq_bias[qidx][u], rq_shift[qidx][u]);
                }
            }
            for (int l = 0; l < LANES; l++) {
#pragma HLS UNROLL
                hold[l] = (l + L::NQ < LANES) ? hold[l + L::NQ] : acc_t(0);
            }
            if (q == L::QS - 1 && last_fold_held) {
                typename L::out_word_t word = 0;
                for (int r = 0; r < L::ROWS; r++) {
#pragma HLS UNROLL
                    set_field<L::OUT_BITS>(word, r, y[r]);
                }
                out.write(word);
                trace_word<L, L::ROWS>(word);
            }
            q++;
            qidx++;
        }
        if (i < L::PIX * L::NF * L::SF) {
            typename L::in_word_t x;
            if (f == 0) {
                x = in.read();
                xbuf[s] = x;
            } else {
                x = xbuf[s];
            }
            for (int l = 0; l < L::PE_SP2; l++) {  // the SP2 engine: one ROM row, PE_SP2 lanes
#pragma HLS UNROLL
                const ap_uint<L::SP2_LANE_BITS> codes =
                    rom_word<L::SP2_LANE_BITS, L::SP2_CHUNK_BITS, L::SP2_CHUNKS>(sp2_w[widx], l * L::SP2_CHUNKS);
                const acc_t dot = sp2_dot<L>(x, codes);
                acc_sp2[l] = (s == 0) ? dot : acc_t(acc_sp2[l] + dot);
            }
            for (int l = 0; l < L::PE_FIX; l++) {  // the fixed engines: one ROM row, PE_FIX lanes
#pragma HLS UNROLL
                const ap_uint<L::FIX_LANE_BITS> weights =
                    rom_word<L::FIX_LANE_BITS, L::FIX_CHUNK_BITS, L::FIX_CHUNKS>(fix_w[widx], l * L::FIX_CHUNKS);
                const acc_t dot = (l < L::PE_FIX_DSP) ? fix_dot<L, typename L::fix_t, acc_t, true>(x, weights)
                                                      : fix_dot<L, typename L::fix_t, acc_t, false>(x, weights);
                acc_fix[l] = (s == 0) ? dot : acc_t(acc_fix[l] + dot);
            }
            for (int l = 0; l < L::PE_HI; l++) {  // the high-precision engine: one ROM row, PE_HI lanes on DSPs
#pragma HLS UNROLL
                const ap_uint<L::HI_LANE_BITS> weights =
                    rom_word<L::HI_LANE_BITS, L::HI_CHUNK_BITS, L::HI_CHUNKS>(hi_w[widx], l * L::HI_CHUNKS);
                const hi_acc_t dot = fix_dot<L, typename L::hi_t, hi_acc_t, true>(x, weights);
                acc_hi[l] = (s == 0) ? dot : hi_acc_t(acc_hi[l] + dot);
            }
            if (s == L::SF - 1) {  // the fold's dot products are complete: hand them over
                for (int l = 0; l < L::PE_SP2; l++) {
#pragma HLS UNROLL
                    hold[l] = acc_sp2[l];
                }
                for (int l = 0; l < L::PE_FIX; l++) {
#pragma HLS UNROLL
                    hold[L::PE_SP2 + l] = acc_fix[l];
                }
                for (int l = 0; l < L::PE_HI; l++) {
#pragma HLS UNROLL
                    hold[L::PE_SP2 + L::PE_FIX + l] = acc_hi[l];
                }
                q = 0;
                qidx = f * L::QS;
                last_fold_held = f == L::NF - 1;
            }
            widx++;
            if (++s == L::SF) {
                s = 0;
                if (++f == L::NF) {
                    f = 0;
                    widx = 0;
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Sliding window unit: reads an (H, W, C) image as words of SIMD channels, keeps the last
// LINES rows in a line buffer (LINES >= KH + SH, a power of two) and emits, for every output
// pixel, its window as SIMD-wide words: conv order (kernel row, kernel column, channel group),
// the order of the IR's weights; pool order (channel group, kernel row, kernel column), so a
// pool combines a group's taps back to back. Padding positions are zero words, generated, not
// stored. One II=1 loop: each cycle it may read one word (when the row it overwrites is no
// longer needed) and emit one word (when the word it needs has been read).
template <class L, bool GROUP_OUTER>
void swu(hls::stream<typename L::in_word_t>& in, hls::stream<typename L::in_word_t>& out) {
#pragma HLS INLINE off
    static const int CG = L::C / L::SIMD;
    static const int TOTAL_IN = L::H * L::W * CG;
    static const int TOTAL_OUT = L::HO * L::WO * L::KH * L::KW * CG;
    typename L::in_word_t lines[L::LINES][L::W][CG];
#pragma HLS BIND_STORAGE variable=lines type=ram_s2p
    int rr = 0, rc = 0, rg = 0, reads = 0;      // next word to read: row, column, group; words read
    int ho = 0, wo = 0, ki = 0, kj = 0, g = 0;  // next word to emit: output pixel, tap, group
    int emitted = 0;
    swu_stream:
    while (emitted < TOTAL_OUT || reads < TOTAL_IN) {
#pragma HLS PIPELINE II=1
#pragma HLS LOOP_TRIPCOUNT min=TOTAL_OUT max=TOTAL_OUT
        const int top = ho * L::SH - L::PH;  // first image row of the current output row's windows
        // emit: the window word (ki, kj, g) of output pixel (ho, wo), if its input is here
        if (emitted < TOTAL_OUT) {
            const int hi = top + ki, wi = wo * L::SW - L::PW + kj;
            const bool pad = hi < 0 || hi >= L::H || wi < 0 || wi >= L::W;
            const int need = (hi * L::W + wi) * CG + g;
            if (pad || need < reads) {
                typename L::in_word_t word = 0;
                if (!pad) word = lines[hi % L::LINES][wi][g];
                out.write(word);
                emitted++;
                bool next_pixel = false;
                if (GROUP_OUTER) {
                    if (++kj == L::KW) {
                        kj = 0;
                        if (++ki == L::KH) {
                            ki = 0;
                            if (++g == CG) {
                                g = 0;
                                next_pixel = true;
                            }
                        }
                    }
                } else {
                    if (++g == CG) {
                        g = 0;
                        if (++kj == L::KW) {
                            kj = 0;
                            if (++ki == L::KH) {
                                ki = 0;
                                next_pixel = true;
                            }
                        }
                    }
                }
                if (next_pixel && ++wo == L::WO) {
                    wo = 0;
                    ho++;
                }
            }
        }
        // read: the next input word, unless its line still holds a row the windows need
        if (reads < TOTAL_IN && (emitted == TOTAL_OUT || rr < top + L::LINES)) {
            lines[rr % L::LINES][rc][rg] = in.read();
            reads++;
            if (++rg == CG) {
                rg = 0;
                if (++rc == L::W) {
                    rc = 0;
                    rr++;
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Pooling on the pool-ordered windows of swu<L, true>: per output pixel and channel group, KH*KW
// words of SIMD channels combined lane by lane by Op, one word per cycle; emits SIMD channels per
// group.
template <class L, class Op>
void pool(hls::stream<typename L::in_word_t>& in, hls::stream<typename L::out_word_t>& out) {
#pragma HLS INLINE
    static const int TAPS = L::KH * L::KW;
    typename L::acc_t acc[L::SIMD];
#pragma HLS ARRAY_PARTITION variable=acc complete
    int tap = 0;
    pool_taps:
    for (int i = 0; i < L::HO * L::WO * (L::C / L::SIMD) * TAPS; i++) {
#pragma HLS PIPELINE II=1
        const typename L::in_word_t x = in.read();
        typename L::out_word_t word = 0;
        for (int k = 0; k < L::SIMD; k++) {
#pragma HLS UNROLL
            const typename L::in_t v = typename L::in_t(field<L::IN_BITS>(x, k));
            const typename L::acc_t a = (tap == 0) ? typename L::acc_t(v) : Op::combine(acc[k], v);
            acc[k] = a;
            set_field<L::OUT_BITS>(word, k, Op::result(a));
        }
        if (tap == TAPS - 1) {
            out.write(word);
            trace_word<L, L::SIMD>(word);
            tap = 0;
        } else {
            tap++;
        }
    }
}

// Max pooling: the largest tap, exact.
template <class L>
struct max_op {
    static typename L::acc_t combine(typename L::acc_t a, typename L::in_t v) {
#pragma HLS INLINE
        return v > a ? typename L::acc_t(v) : a;
    }
    static typename L::out_t result(typename L::acc_t a) {
#pragma HLS INLINE
        return typename L::out_t(a);
    }
};

// Average pooling: the window sum, requantized with the layer's mult and shift, no bias (the
// multiplier is a constant, so each lane's requantizer is a constant multiply).
template <class L>
struct avg_op {
    static typename L::acc_t combine(typename L::acc_t a, typename L::in_t v) {
#pragma HLS INLINE
        return typename L::acc_t(a + v);
    }
    static typename L::out_t result(typename L::acc_t a) {
#pragma HLS INLINE
        return requantize<L>(a, L::MULT, 0, L::SHIFT);
    }
};

template <class L>
void maxpool(hls::stream<typename L::in_word_t>& in, hls::stream<typename L::out_word_t>& out) {
#pragma HLS INLINE off
    pool<L, max_op<L> >(in, out);
}

template <class L>
void avgpool(hls::stream<typename L::in_word_t>& in, hls::stream<typename L::out_word_t>& out) {
#pragma HLS INLINE off
    pool<L, avg_op<L> >(in, out);
}

// ---------------------------------------------------------------------------------------------
// Residual add and channel concat (docs/ir.md, "Add and concat"), SIMD channels a cycle: each input
// element is aligned to the common fraction (a left shift by ALIGN0 / ALIGN1, exact in acc_t),
// summed (add) or passed on (concat), and requantized with the layer's constant MULT and SHIFT and
// no bias, by the same requantizer as every other layer (round half up, clamp).
template <class L, class T, int BITS, int ALIGN, class W>
typename L::acc_t merge_aligned(W word, int k) {
#pragma HLS INLINE
    return typename L::acc_t(typename L::acc_t(T(field<BITS>(word, k))) << ALIGN);
}

// add: per pixel and channel group, one word of each input at the same position -> one word.
template <class L>
void add(hls::stream<typename L::in_word_t>& in0, hls::stream<typename L::in1_word_t>& in1,
         hls::stream<typename L::out_word_t>& out) {
#pragma HLS INLINE off
    merge_add_words:
    for (int i = 0; i < L::PIX * (L::C0 / L::SIMD); i++) {
#pragma HLS PIPELINE II=1
        const typename L::in_word_t a = in0.read();
        const typename L::in1_word_t b = in1.read();
        typename L::out_word_t word = 0;
        for (int k = 0; k < L::SIMD; k++) {
#pragma HLS UNROLL
            const typename L::acc_t sum =
                merge_aligned<L, typename L::in_t, L::IN_BITS, L::ALIGN0>(a, k) +
                merge_aligned<L, typename L::in1_t, L::IN1_BITS, L::ALIGN1>(b, k);
            set_field<L::OUT_BITS>(word, k, requantize<L>(sum, L::MULT, 0, L::SHIFT));
        }
        out.write(word);
        trace_word<L, L::SIMD>(word);
    }
}

// concat: per pixel, input 0's C0/SIMD channel groups, then input 1's C1/SIMD (SIMD divides both,
// so a word never straddles the inputs) -> one word each.
template <class L>
void concat(hls::stream<typename L::in_word_t>& in0, hls::stream<typename L::in1_word_t>& in1,
            hls::stream<typename L::out_word_t>& out) {
#pragma HLS INLINE off
    static const int G0 = L::C0 / L::SIMD, G = (L::C0 + L::C1) / L::SIMD;
    int g = 0;  // channel group of the output pixel
    merge_concat_words:
    for (int i = 0; i < L::PIX * G; i++) {
#pragma HLS PIPELINE II=1
        typename L::in_word_t a = 0;
        typename L::in1_word_t b = 0;
        if (g < G0) {
            a = in0.read();
        } else {
            b = in1.read();
        }
        typename L::out_word_t word = 0;
        for (int k = 0; k < L::SIMD; k++) {
#pragma HLS UNROLL
            const typename L::acc_t v = (g < G0) ? merge_aligned<L, typename L::in_t, L::IN_BITS, L::ALIGN0>(a, k)
                                                 : merge_aligned<L, typename L::in1_t, L::IN1_BITS, L::ALIGN1>(b, k);
            set_field<L::OUT_BITS>(word, k, requantize<L>(v, L::MULT, 0, L::SHIFT));
        }
        out.write(word);
        trace_word<L, L::SIMD>(word);
        g = (g == G - 1) ? 0 : g + 1;
    }
}

// ---------------------------------------------------------------------------------------------
// Fork: a stream with two readers (a residual shortcut, or the network input read by two layers)
// copies each of its WORDS words a frame to both. A stream with more readers chains forks. The
// output feeding the shorter branch is the skip stream, its depth set in the top (docs/hls.md).
template <class T, int WORDS>
void fork(hls::stream<T>& in, hls::stream<T>& out0, hls::stream<T>& out1) {
#pragma HLS INLINE off
    fork_words:
    for (int i = 0; i < WORDS; i++) {
#pragma HLS PIPELINE II=1
        const T word = in.read();
        out0.write(word);
        out1.write(word);
    }
}

// ---------------------------------------------------------------------------------------------
// Width converter: a frame of TOTAL elements of B bits, read as words of IN_N elements and
// written as words of OUT_N (also the top-level ports, whose words are padded to whole bytes:
// the padding is dropped on input, zero on output). A shift register of IN_N + OUT_N elements;
// each cycle reads a word when fewer than OUT_N elements wait, and writes one when OUT_N do:
// max(TOTAL/IN_N, TOTAL/OUT_N) cycles.
template <class TI, class TO, int B, int IN_N, int OUT_N, int TOTAL>
void regroup(hls::stream<TI>& in, hls::stream<TO>& out) {
#pragma HLS INLINE off
    static const int ITERS = (TOTAL / IN_N > TOTAL / OUT_N) ? TOTAL / IN_N : TOTAL / OUT_N;
    ap_uint<(IN_N + OUT_N) * B> buf = 0;
    int count = 0;  // elements waiting in buf
    regroup_words:
    for (int i = 0; i < ITERS; i++) {
#pragma HLS PIPELINE II=1
        if (count < OUT_N) {
            const ap_uint<IN_N * B> word = ap_uint<IN_N * B>(in.read());
            buf |= ap_uint<(IN_N + OUT_N) * B>(word) << (count * B);
            count += IN_N;
        }
        if (count >= OUT_N) {
            out.write(TO(ap_uint<OUT_N * B>(buf)));
            buf >>= OUT_N * B;
            count -= OUT_N;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Top-level side channels. axis_in: the data of BEATS input beats (TKEEP, TSTRB, TLAST ignored:
// frames are counted in beats, and a DMA transfer of many frames marks only its last beat).
// axis_out: BEATS output words as beats with every byte kept and TLAST on the frame's last one.
template <class A, class T, int BEATS>
void axis_in(hls::stream<A>& in, hls::stream<T>& out) {
#pragma HLS INLINE off
    axis_in_beats:
    for (int i = 0; i < BEATS; i++) {
#pragma HLS PIPELINE II=1
        out.write(T(in.read().data));
    }
}

template <class T, class A, int BEATS>
void axis_out(hls::stream<T>& in, hls::stream<A>& out) {
#pragma HLS INLINE off
    axis_out_beats:
    for (int i = 0; i < BEATS; i++) {
#pragma HLS PIPELINE II=1
        A beat;
        beat.data = in.read();
        beat.keep = -1;
        beat.strb = -1;
        beat.last = (i == BEATS - 1);
        out.write(beat);
    }
}

}  // namespace msq

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

#endif  // MSQ_KERNELS_H
