// MSQ HLS kernel library: the layers of a mixed-scheme (SP2 + fixed-point) network as
// streaming Vitis HLS functions. Every generated MSQ project includes a copy of this file.
//
// Arithmetic (docs/ir.md, msq/ir/arith.py), bit for bit:
//   acc_r = sum_k x_k * w_rk                               exact, in an ap_int<ACC_BITS>
//   y_r   = clamp((acc_r * mult_r + bias_r + 2^(shift_r-1)) >> shift_r, OUT_LO, OUT_HI)  (shift_r >= 1)
//   y_r   = clamp(acc_r * mult_r + bias_r, OUT_LO, OUT_HI)                                (shift_r == 0)
// The bias enters after the multiplier, in 2^-shift output steps (the A*B+C of one DSP48).
// Tensors stream channels-last, one element per stream token: an image (H, W, C) row-major.
//
// A layer is described by a configuration struct L (generated per layer) holding its types,
// shapes and constant tables; the functions below are templates on L.
//
// Pragmas used here, explained once:
//   PIPELINE II=1        start one loop iteration per clock: one MAC per lane per cycle.
//   UNROLL               replicate the loop body in hardware: the lanes of an engine.
//   ARRAY_PARTITION      split an array (cyclic by the lane count, or completely) so that every
//                        unrolled lane reads its own memory port in the same cycle; the factor
//                        is a named local constant (`lanes`), which Vitis accepts in pragmas.
//   BIND_OP ... impl=dsp implement the fixed-point weight product on a DSP slice.
//   INLINE               dissolve a small helper into its caller (no call hierarchy in RTL).
// The top function (generated) adds INTERFACE axis / ap_ctrl_none and DATAFLOW, so the layers
// run as concurrent processes connected by FIFOs.
//
// Engines: every dense/conv layer has an SP2 engine (shift-add in LUT fabric) for its SP2 rows
// and a fixed-point engine (DSP multipliers) for its fixed rows. They share the input window,
// write separate output buffers and do not depend on each other, so HLS schedules them in
// parallel. L::SP2_LANES / L::FIX_LANES rows are computed concurrently by each engine (the
// planner's parallelism); the row tables are padded to a multiple of the lanes with zero rows.
// The requantization multiplier is a per-row constant applied once per output element, not a
// weight; Vitis picks its implementation.
#ifndef MSQ_KERNELS_H
#define MSQ_KERNELS_H

#include <ap_int.h>
#include <hls_stream.h>

#include "msq_widths.h"  // generated: MULT_BITS, SHIFT_BITS of the IR contract

#if defined(MSQ_TRACE) && !defined(__SYNTHESIS__)
#include <cstdio>
#endif

namespace msq {

typedef ap_int<MULT_BITS> mult_t;    // signed requantization multiplier (msq_widths.h)
typedef ap_uint<SHIFT_BITS> shift_t; // requantization shift (msq_widths.h)

// Constant tables are stored as plain C integers (the *_word_t types) and converted to their
// exact-width ap_int type where they are read. g++ needs ~30 s per few thousand ap_int array
// initializers (and crashes on large arrays of ap_uint structs), plain integers compile at once;
// the datapath is exact-width either way. Weights are 8-bit words (wbits <= 8).
typedef short mult_word_t;
typedef unsigned char shift_word_t;

// ---------------------------------------------------------------------------------------------
// C-simulation trace: with -DMSQ_TRACE every layer output element is also written to
// trace_file as "<layer index> <value>" (the testbench defines and opens the file). Absent from
// synthesis.
#if defined(MSQ_TRACE) && !defined(__SYNTHESIS__)
extern std::FILE* trace_file;
#endif

template <class L>
void emit(hls::stream<typename L::out_t>& out, typename L::out_t v) {
#pragma HLS INLINE
    out.write(v);
#if defined(MSQ_TRACE) && !defined(__SYNTHESIS__)
    if (trace_file) std::fprintf(trace_file, "%d %lld\n", L::LAYER, (long long)v.to_int64());
#endif
}

// ---------------------------------------------------------------------------------------------
// Requantization: add the bias after the multiplier, round half up, then clamp. L::rq_t is the
// datapath width of msq/ir/arith.py requant_datapath_bits: it holds acc * mult, + bias, and the
// rounding term 2^(shift-1) on its own, so nothing wraps.
template <class L>
typename L::out_t requantize(typename L::acc_t acc, mult_t mult, typename L::rq_t bias, shift_t shift) {
#pragma HLS INLINE
    typedef typename L::rq_t rq_t;
    const int n = shift;
    rq_t prod = acc * mult;
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

// The SP2 engine's product: the layer's stored code word, decoded into two shifts and an add.
template <class L>
struct sp2_mul {
    typedef typename L::sp2_word_t word_t;
    static auto product(typename L::in_t x, word_t w) {
#pragma HLS INLINE
        return sp2_product<L::SP2_E, L::SP2_M1, L::SP2_M2>(x, typename L::sp2_t(w));
    }
};

// One engine: SLOTS rows, LANES at a time; y[slot] is the requantized output of row slot. The
// engine itself only accumulates M::product (the SP2 or the fixed product) and requantizes, so the
// SP2 engine (M = sp2_mul) has no multiplier on a weight.
template <class L, class M, int LANES, int GROUPS, int SLOTS>
void engine(const typename L::in_t x[L::K], typename L::out_t y[SLOTS],
            const typename M::word_t w[SLOTS][L::K], const typename L::bias_word_t bias[SLOTS],
            const mult_word_t mult[SLOTS], const shift_word_t shift[SLOTS]) {
    const int lanes = LANES;  // named for the pragmas below
    (void)lanes;
#pragma HLS ARRAY_PARTITION variable=w cyclic factor=lanes dim=1
#pragma HLS ARRAY_PARTITION variable=bias cyclic factor=lanes dim=1
#pragma HLS ARRAY_PARTITION variable=mult cyclic factor=lanes dim=1
#pragma HLS ARRAY_PARTITION variable=shift cyclic factor=lanes dim=1
#pragma HLS ARRAY_PARTITION variable=y cyclic factor=lanes dim=1
    for (int g = 0, base = 0; g < GROUPS; g++, base += LANES) {  // base: first row of group g
        typename L::acc_t acc[LANES];
#pragma HLS ARRAY_PARTITION variable=acc complete
        for (int l = 0; l < LANES; l++) {
#pragma HLS UNROLL
            acc[l] = 0;
        }
        for (int k = 0; k < L::K; k++) {
#pragma HLS PIPELINE II=1
            for (int l = 0; l < LANES; l++) {
#pragma HLS UNROLL
                acc[l] += M::product(x[k], w[base + l][k]);
            }
        }
        for (int l = 0; l < LANES; l++) {
#pragma HLS UNROLL
            const int slot = base + l;
            y[slot] = requantize<L>(acc[l], mult[slot], bias[slot], shift[slot]);
        }
    }
}
// END SP2 ENGINE

// ---------------------------------------------------------------------------------------------
// Fixed-point engine: the weight product is an integer multiply bound to a DSP slice.
template <class X, class W>
ap_int<X::width + W::width + 1> fixed_product(X x, W w) {
#pragma HLS INLINE
    ap_int<X::width + W::width + 1> p = x * w;
#pragma HLS BIND_OP variable=p op=mul impl=dsp
    return p;
}

// The fixed engine's product: the stored two's-complement weight times the input, on a DSP.
template <class L>
struct fixed_mul {
    typedef typename L::fix_word_t word_t;
    static auto product(typename L::in_t x, word_t w) {
#pragma HLS INLINE
        return fixed_product(x, typename L::fix_t(w));
    }
};

// ---------------------------------------------------------------------------------------------
// One output vector of a dense/conv layer: both engines on the same input vector, then the rows
// in their original order (row r lives in engine ROW_SP2[r] at slot ROW_SLOT[r]).
template <class L>
void mixed_rows(const typename L::in_t x[L::K], hls::stream<typename L::out_t>& out) {
#pragma HLS INLINE
    typename L::out_t y_sp2[L::SP2_SLOTS];
    typename L::out_t y_fix[L::FIX_SLOTS];
    engine<L, sp2_mul<L>, L::SP2_LANES, L::SP2_GROUPS, L::SP2_SLOTS>(
        x, y_sp2, L::sp2_w, L::sp2_bias, L::sp2_mult, L::sp2_shift);
    engine<L, fixed_mul<L>, L::FIX_LANES, L::FIX_GROUPS, L::FIX_SLOTS>(
        x, y_fix, L::fix_w, L::fix_bias, L::fix_mult, L::fix_shift);
    for (int r = 0; r < L::ROWS; r++) {
#pragma HLS PIPELINE II=1
        const int slot = L::row_slot[r];
        emit<L>(out, L::row_sp2[r] ? y_sp2[slot] : y_fix[slot]);
    }
}

// Dense layer: buffer the K inputs of one vector, then compute every row.
template <class L>
void dense(hls::stream<typename L::in_t>& in, hls::stream<typename L::out_t>& out) {
    typename L::in_t x[L::K];
    for (int k = 0; k < L::K; k++) {
#pragma HLS PIPELINE II=1
        x[k] = in.read();
    }
    mixed_rows<L>(x, out);
}

// ---------------------------------------------------------------------------------------------
// Sliding window over a channels-last image stream with a line buffer of KH rows of the
// zero-padded image: each input pixel is read once; when the window whose bottom-right corner is
// the current pixel is an output position (stride, floor mode), Op::apply gets the window as a
// vector in (kh, kw, c) order, the order of the IR's conv weights.
template <class L, class Op>
void sliding_window(hls::stream<typename L::in_t>& in, hls::stream<typename L::out_t>& out) {
    static const int HP = L::H + 2 * L::PH;
    static const int WP = L::W + 2 * L::PW;
    typename L::in_t line[L::KH][WP][L::C];
    typename L::in_t win[L::KH * L::KW * L::C];
    for (int pr = 0; pr < HP; pr++) {
        for (int pc = 0; pc < WP; pc++) {
            const bool pad = pr < L::PH || pr >= L::PH + L::H || pc < L::PW || pc >= L::PW + L::W;
            for (int c = 0; c < L::C; c++) {
#pragma HLS PIPELINE II=1
                line[pr % L::KH][pc][c] = pad ? typename L::in_t(0) : in.read();
            }
            const int top = pr - (L::KH - 1);
            const int left = pc - (L::KW - 1);
            const bool ready = top >= 0 && left >= 0 && top % L::SH == 0 && left % L::SW == 0 &&
                               top / L::SH < L::HO && left / L::SW < L::WO;
            if (ready) {
                for (int i = 0; i < L::KH; i++) {
                    for (int j = 0; j < L::KW; j++) {
                        for (int c = 0; c < L::C; c++) {
#pragma HLS PIPELINE II=1
                            win[(i * L::KW + j) * L::C + c] = line[(top + i) % L::KH][left + j][c];
                        }
                    }
                }
                Op::apply(win, out);
            }
        }
    }
}

template <class L>
struct conv_op {
    static void apply(const typename L::in_t win[L::KH * L::KW * L::C], hls::stream<typename L::out_t>& out) {
        mixed_rows<L>(win, out);
    }
};

template <class L>
struct maxpool_op {
    static void apply(const typename L::in_t win[L::KH * L::KW * L::C], hls::stream<typename L::out_t>& out) {
        for (int c = 0; c < L::C; c++) {
            typename L::in_t m = win[c];
            for (int p = 1; p < L::KH * L::KW; p++) {
                const typename L::in_t v = win[p * L::C + c];
                if (v > m) m = v;
            }
            emit<L>(out, m);
        }
    }
};

template <class L>
struct avgpool_op {
    static void apply(const typename L::in_t win[L::KH * L::KW * L::C], hls::stream<typename L::out_t>& out) {
        for (int c = 0; c < L::C; c++) {
            typename L::acc_t sum = 0;
            for (int p = 0; p < L::KH * L::KW; p++) {
                sum += win[p * L::C + c];
            }
            emit<L>(out, requantize<L>(sum, L::MULT, 0, L::SHIFT));
        }
    }
};

template <class L>
void conv2d(hls::stream<typename L::in_t>& in, hls::stream<typename L::out_t>& out) {
    sliding_window<L, conv_op<L> >(in, out);
}

template <class L>
void maxpool2d(hls::stream<typename L::in_t>& in, hls::stream<typename L::out_t>& out) {
    sliding_window<L, maxpool_op<L> >(in, out);
}

template <class L>
void avgpool2d(hls::stream<typename L::in_t>& in, hls::stream<typename L::out_t>& out) {
    sliding_window<L, avgpool_op<L> >(in, out);
}

// ---------------------------------------------------------------------------------------------
// AXI-Stream ports carry one element per beat in a byte-aligned TDATA, value in the low bits
// (sign-extended for signed formats). These adapt between port and exact-width layer streams.
template <int N, class P, class A>
void from_port(hls::stream<P>& port, hls::stream<A>& out) {
    for (int i = 0; i < N; i++) {
#pragma HLS PIPELINE II=1
        out.write(A(port.read()));
    }
}

template <int N, class A, class P>
void to_port(hls::stream<A>& in, hls::stream<P>& port) {
    for (int i = 0; i < N; i++) {
#pragma HLS PIPELINE II=1
        port.write(P(in.read()));
    }
}

}  // namespace msq

#endif  // MSQ_KERNELS_H
