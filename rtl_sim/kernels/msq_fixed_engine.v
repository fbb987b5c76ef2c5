// Fixed-point engine of the folded layer: PE rows x SIMD inputs per cycle on DSP48 multipliers.
// PACK = 1 puts two rows (2q, 2q+1) into one multiply: (w_lo + w_hi * 2^S) * x, S = ACCW, the
// operand a bit concatenation because the weight ROM holds w_hi - [w_lo < 0] in the high row's
// field; accumulated as one packed value; at the fold end the low field is
// L = signed P[S-1:0] and the high field U = (P >>> S) + P[S-1] (the borrow of a negative L).
// Exact while every partial sum fits ACCW bits: S = ACCW, ACCW + WBITS <= 25 (the A operand) and
// 2 * ACCW + 1 <= 48 (P); the generator enables packing only then.
// ARCH selects how a row's SIMD products are summed:
//   0: products registered in DSPs, adder tree in LUTs (msq_tree), accumulator in LUTs;
//   1: systolic chains through the DSP post-adders, one per segment of SEG columns
//      (c_j <= c_{j-1} + x_j * w_j; column j of a segment has its operands delayed j cycles, in
//      flip-flops with a reset so they are not turned into SRL LUTs), the SIMD / SEG segment sums
//      added by a registered tree in LUTs (msq_tree), the accumulator over the SF steps of a fold
//      in LUTs. One chain over all SIMD columns would need SIMD^2/2 operand delays per lane
//      (measured: 157 FF per MAC at SIMD 64); segments need SEG^2/2 per segment.
// MREG (ARCH 1) places the chain's extra register, the latency being the same either way:
//   0: after the chain (xc7: Yosys packs multiply and post-add into one DSP48E1);
//   1: on each product, before the chain add (ECP5: its multipliers have no post-adder, and a
//      multiply plus a carry chain in one cycle is the critical path).
// Timing as msq_shift_add_engine: issue at cycle 0, x at cycle 1 (registered here), w at cycle 2,
// acc_v when the accumulators hold a fold.
module msq_fixed_engine #(
    parameter integer PE     = 2,
    parameter integer SIMD   = 2,
    parameter integer XW     = 5,   // signed activation width
    parameter integer WBITS  = 4,
    parameter integer ACCW   = 16,
    parameter integer PACK   = 0,
    parameter integer ARCH   = 1,
    parameter integer MREG   = 0,
    parameter integer RSTEP  = 2,  // adder tree register spacing
    parameter integer SEG    = 8   // ARCH 1: columns per chain (divides SIMD)
) (
    input  wire                 clk,
    input  wire                 rst_n,
    input  wire                 v,
    input  wire                 first,
    input  wire                 last,
    input  wire [SIMD*XW-1:0]   x,
    input  wire [PE*SIMD*WBITS-1:0] w,
    output wire                 acc_pre,
    output wire                 acc_v,
    output wire [PE*ACCW-1:0]   accs
);
    localparam integer NL  = PACK != 0 ? PE / 2 : PE;            // multiplier lanes per column
    localparam integer OPW = PACK != 0 ? 2 * WBITS : WBITS;      // weight operand bits per lane
    localparam integer LW  = PACK != 0 ? 2 * ACCW + 1 : ACCW;    // lane accumulator width
    localparam integer PW  = PACK != 0 ? ACCW + WBITS + XW : XW + WBITS;  // exact product width
    localparam integer H   = $clog2(SIMD);
    localparam integer TW  = LW + H;
    localparam integer EXT = (PW > LW ? PW : LW) + 1;
    localparam integer NSEG = SIMD / SEG;                         // ARCH 1: chains per lane
    localparam integer HS  = $clog2(NSEG);                        // ... and their tree's height
    localparam integer SUM_LAT = ARCH == 1 ? SEG + 1 + HS / RSTEP : 1 + H / RSTEP;
    localparam integer LAT = 2 + SUM_LAT + 1;


    wire acc_en, acc_first;
    msq_step_control #(.LAT(LAT)) control (
        .clk(clk), .rst_n(rst_n), .v(v), .first(first), .last(last),
        .acc_en(acc_en), .acc_first(acc_first), .acc_pre(acc_pre), .acc_v(acc_v));

    reg [SIMD*XW-1:0] xr;   // the input word, registered: it meets the weights at cycle 2
    always @(posedge clk) xr <= x;

    genvar l, s;
    generate
        for (l = 0; l < NL; l = l + 1) begin : g_lane
            wire [SIMD*LW-1:0] prods;   // products of this lane, column s delayed by s (ARCH 1)
            for (s = 0; s < SIMD; s = s + 1) begin : g_col
                // operands of column s: x_s and this lane's weight(s)
                wire [XW+OPW-1:0] op0;
                if (PACK != 0) begin : g_op_pack
                    assign op0 = {w[((2 * l + 1) * SIMD + s) * WBITS +: WBITS],
                                  w[(2 * l * SIMD + s) * WBITS +: WBITS], xr[s*XW +: XW]};
                end else begin : g_op_one
                    assign op0 = {w[(l * SIMD + s) * WBITS +: WBITS], xr[s*XW +: XW]};
                end
                wire [XW+OPW-1:0] op;
                if (ARCH == 1 && s % SEG > 0) begin : g_skew
                    localparam integer D = s % SEG;   // the column's place in its chain
                    reg [XW+OPW-1:0] d [0:D-1];
                    integer i;
                    always @(posedge clk) begin
                        if (!rst_n) begin
                            for (i = 0; i < D; i = i + 1) d[i] <= {(XW + OPW){1'b0}};
                        end else begin
                            d[0] <= op0;
                            for (i = 1; i < D; i = i + 1) d[i] <= d[i-1];
                        end
                    end
                    assign op = d[D-1];
                end else begin : g_noskew
                    assign op = op0;
                end
                wire signed [XW-1:0]    xs = op[XW-1:0];
                wire signed [WBITS-1:0] wl = op[XW +: WBITS];
                wire signed [PW-1:0]    prod;
                if (PACK != 0) begin : g_mul_pack
                    wire signed [WBITS-1:0] wh = op[XW+WBITS +: WBITS];
                    // wl + wh * 2^ACCW as bits: the ROM holds wh less wl's sign (verilog.packed_weight_codes)
                    wire signed [ACCW+WBITS-1:0] pre = {wh, {(ACCW - WBITS){wl[WBITS-1]}}, wl};
                    assign prod = pre * xs;
                end else begin : g_mul_one
                    assign prod = xs * wl;
                end
                /* verilator lint_off UNUSEDSIGNAL */ // bits above LW: every partial sum fits LW
                wire signed [EXT-1:0] pext = {{(EXT - PW){prod[PW-1]}}, prod};
                /* verilator lint_on UNUSEDSIGNAL */
                assign prods[s*LW +: LW] = pext[LW-1:0];
            end

            wire signed [LW-1:0] fold_sum;   // the SIMD products of one step, summed
            /* verilator lint_off UNUSEDSIGNAL */
            wire                 unused_c;       // no carries enter the fixed engine's tree
            /* verilator lint_on UNUSEDSIGNAL */
            if (ARCH == 1) begin : g_chain
                wire [SIMD*LW-1:0] terms;   // the chains' inputs: the products, registered when MREG
                wire [NSEG*LW-1:0] seg_sums;
                genvar g;
                for (g = 0; g < NSEG; g = g + 1) begin : g_seg
                    reg signed [LW-1:0] c [0:SEG-1];
                    integer j;
                    always @(posedge clk) begin
                        c[0] <= terms[g*SEG*LW +: LW];
                        for (j = 1; j < SEG; j = j + 1) c[j] <= c[j-1] + terms[(g*SEG + j)*LW +: LW];
                    end
                    if (MREG != 0) begin : g_out
                        assign seg_sums[g*LW +: LW] = c[SEG-1];
                    end else begin : g_sum_reg
                        reg signed [LW-1:0] sum_r;
                        always @(posedge clk) sum_r <= c[SEG-1];
                        assign seg_sums[g*LW +: LW] = sum_r;
                    end
                end
                if (MREG != 0) begin : g_mreg
                    reg [SIMD*LW-1:0] m;
                    always @(posedge clk) m <= prods;
                    assign terms = m;
                end else begin : g_direct
                    assign terms = prods;
                end
                if (NSEG > 1) begin : g_seg_tree
                    // the segment sums, added modulo 2^LW as one chain would (every partial sum fits LW)
                    /* verilator lint_off UNUSEDSIGNAL */
                    wire signed [LW+HS-1:0] ssum;
                    /* verilator lint_on UNUSEDSIGNAL */
                    msq_tree #(.N(NSEG), .IW(LW), .H(HS), .RSTEP(RSTEP)) tree (
                        .clk(clk), .leaves(seg_sums), .cin({NSEG{1'b0}}), .sum(ssum), .cout(unused_c));
                    assign fold_sum = ssum[LW-1:0];
                end else begin : g_one_chain  // no tree: a module boundary would keep Yosys from merging
                    assign fold_sum = seg_sums;
                    assign unused_c = 1'b0;
                end
            end else begin : g_tree
                reg [SIMD*LW-1:0] m;
                always @(posedge clk) m <= prods;
                /* verilator lint_off UNUSEDSIGNAL */
                wire signed [TW-1:0] tsum;
                /* verilator lint_on UNUSEDSIGNAL */
                msq_tree #(.N(SIMD), .IW(LW), .H(H), .RSTEP(RSTEP)) tree (
                    .clk(clk), .leaves(m), .cin({SIMD{1'b0}}), .sum(tsum), .cout(unused_c));
                assign fold_sum = tsum[LW-1:0];
            end

            reg signed [LW-1:0] acc;
            always @(posedge clk) begin
                if (acc_en) acc <= (acc_first ? {LW{1'b0}} : acc) + fold_sum;
            end
            if (PACK != 0) begin : g_unpack
                /* verilator lint_off UNUSEDSIGNAL */ // the high field fits ACCW bits
                wire [ACCW:0] hi = acc[LW-1:ACCW] + {{ACCW{1'b0}}, acc[ACCW-1]};
                /* verilator lint_on UNUSEDSIGNAL */
                assign accs[2*l*ACCW +: ACCW]       = acc[ACCW-1:0];
                assign accs[(2*l+1)*ACCW +: ACCW]   = hi[ACCW-1:0];
            end else begin : g_plain
                assign accs[l*ACCW +: ACCW] = acc;
            end
        end
    endgenerate
endmodule
