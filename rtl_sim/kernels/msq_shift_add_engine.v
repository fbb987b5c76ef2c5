// Shift-add engine of the folded layer: PE rows x SIMD inputs per cycle, no multiplier. Each
// product is a sum of shifted copies of the input x, the sign of each term folded into XOR +
// carry-in (-t = ~t + 1), one carry riding the adder tree's carry input. Two weight codes:
//   CODE 0 (SP2 rows, docs/ir.md): code (sign, k1, k2), |x*w| = (x <<< (E-k1)) + (x <<< (E-k2)),
//          a zero index adding nothing; one sign for the product.
//   CODE 1 (fixed-point rows in LUTs): the weight's ND radix-4 Booth digits d_j in {0, +-1, +-2},
//          w = sum_j d_j * 4^j; digit j is 3 bits {neg, nz, dbl} at bit 3j (dbl lowest) and
//          contributes +-(x <<< (2j + dbl)) when nz.
// Each row sums its SIMD products in one pipelined tree and accumulates over the SF steps of a
// fold. The weight word w holds PE*SIMD codes of CW bits (row-major: row p, column s).
// Timing: a step is issued (v) at cycle 0; its input word x arrives at cycle 1 and is registered
// twice here, the second time in one copy per XROWS rows (kept apart: each copy drives few rows,
// not the whole engine); the weight word w arrives at cycle 2 from its ROM and is registered once
// here, next to the products (the ROM may sit far away: on ECP5 its route into the first adder
// was the critical path), in one register per row, kept apart (Yosys would merge the bits of
// rows whose codes agree in every fold, and the merged register drive another row's tree across
// the device); so both meet at cycle 3. acc_v is high in the cycle the accumulators
// hold a finished fold (LAT cycles after its last step), acc_pre one cycle before.
module msq_shift_add_engine #(
    parameter integer PE     = 2,
    parameter integer SIMD   = 2,
    parameter integer XW     = 5,   // signed activation width (unsigned inputs get a zero bit)
    parameter integer CODE   = 0,   // 0: SP2 codes, 1: radix-4 Booth digits
    parameter integer KW1    = 2,   // CODE 0: code field widths k1, k2 (k2 at least 1 bit)
    parameter integer KW2    = 1,
    parameter integer ND     = 2,   // CODE 1: Booth digits per weight
    parameter integer ACCW   = 16,
    parameter integer RSTEP  = 2,   // adder tree register spacing (levels)
    parameter integer XROWS  = 8    // rows per copy of the input word register
) (
    input  wire                 clk,
    input  wire                 rst_n,
    input  wire                 v,
    input  wire                 first,
    input  wire                 last,
    input  wire [SIMD*XW-1:0]   x,
    input  wire [PE*SIMD*(CODE == 0 ? 1 + KW1 + KW2 : 3 * ND)-1:0] w,
    output wire                 acc_pre,
    output wire                 acc_v,
    output wire [PE*ACCW-1:0]   accs
);
    localparam integer CW  = CODE == 0 ? 1 + KW1 + KW2 : 3 * ND;
    localparam integer E   = (1 << KW1) - 1;
    // leaf width: |x| < 2^(XW-1) times the largest weight magnitude, 2^E (SP2: two terms of at
    // most 2^(E-1)) or 2^(2*ND-1) (Booth)
    localparam integer MW  = CODE == 0 ? XW + E : XW + 2 * ND - 1;
    localparam integer H   = $clog2(SIMD);
    localparam integer TW  = MW + H;              // tree output width
    localparam integer SW  = (ACCW > TW ? ACCW : TW) + 1;  // sum width (top bits trimmed by synthesis)
    localparam integer LAT = 3 + H / RSTEP + 1;   // issue -> acc_v

    wire acc_en, acc_first;
    msq_step_control #(.LAT(LAT)) control (
        .clk(clk), .rst_n(rst_n), .v(v), .first(first), .last(last),
        .acc_en(acc_en), .acc_first(acc_first), .acc_pre(acc_pre), .acc_v(acc_v));

    localparam integer NX = (PE + XROWS - 1) / XROWS;  // copies of the input word register

    reg [SIMD*XW-1:0] x1;  // the input word at cycle 2
    always @(posedge clk) x1 <= x;

    wire [NX*SIMD*XW-1:0] xc;
    genvar p, s, j;
    generate
        for (p = 0; p < NX; p = p + 1) begin : g_xcopy
            (* keep = "true" *) reg [SIMD*XW-1:0] xr;  // the input word at cycle 3
            (* keep *) always @(posedge clk) xr <= x1;
            assign xc[p*SIMD*XW +: SIMD*XW] = xr;
        end
        for (p = 0; p < PE; p = p + 1) begin : g_row
            wire [SIMD*XW-1:0] xg = xc[(p / XROWS)*SIMD*XW +: SIMD*XW];
            (* keep = "true" *) reg [SIMD*CW-1:0] wr;  // this row's weight codes at cycle 3
            (* keep *) always @(posedge clk) wr <= w[p*SIMD*CW +: SIMD*CW];
            wire [SIMD*MW-1:0] leaves;
            wire [SIMD-1:0]    carries;
            for (s = 0; s < SIMD; s = s + 1) begin : g_col
                wire [CW-1:0]        code = wr[s*CW +: CW];
                wire signed [MW-1:0] xe   = {{(MW - XW){xg[s*XW+XW-1]}}, xg[s*XW +: XW]};
                if (CODE == 0) begin : g_sp2
                    // each term a multiplexer of constant shifts (no barrel shifter)
                    wire [KW1-1:0]      k1 = code[KW2 +: KW1];
                    wire [KW2-1:0]      k2 = code[0 +: KW2];
                    reg signed [MW-1:0] t1, t2;
                    integer k;
                    always @* begin
                        t1 = {MW{1'b0}};
                        t2 = {MW{1'b0}};
                        for (k = 1; k < (1 << KW1); k = k + 1) if (k1 == k[KW1-1:0]) t1 = xe <<< (E - k);
                        for (k = 1; k < (1 << KW2); k = k + 1) if (k2 == k[KW2-1:0]) t2 = xe <<< (E - k);
                    end
                    assign carries[s] = code[CW-1];
                    assign leaves[s*MW +: MW] = (t1 + t2) ^ {MW{code[CW-1]}};
                end else begin : g_booth
                    // term j: +-(x << (2j + dbl)) or 0, each negative term's +1 as a carry: the
                    // first term's into the tree, the others' into this leaf's sum
                    wire [ND*MW-1:0] terms;
                    wire [ND-1:0]    negs;
                    for (j = 0; j < ND; j = j + 1) begin : g_digit
                        localparam integer   SH  = 2 * j;   // digit j weighs 4^j
                        wire [2:0]           d   = code[3*j +: 3];
                        wire signed [MW-1:0] mag = !d[1] ? {MW{1'b0}} : d[0] ? (xe <<< (SH + 1)) : (xe <<< SH);
                        assign negs[j] = d[2];
                        assign terms[j*MW +: MW] = mag ^ {MW{d[2]}};
                    end
                    reg signed [MW-1:0] sum;
                    integer i;
                    always @* begin
                        sum = terms[0 +: MW];
                        for (i = 1; i < ND; i = i + 1) sum = sum + terms[i*MW +: MW] + {{(MW - 1){1'b0}}, negs[i]};
                    end
                    assign carries[s] = negs[0];
                    assign leaves[s*MW +: MW] = sum;
                end
            end
            wire signed [TW-1:0] tsum;
            wire                 tc;
            msq_tree #(.N(SIMD), .IW(MW), .H(H), .RSTEP(RSTEP)) tree (
                .clk(clk), .leaves(leaves), .cin(carries), .sum(tsum), .cout(tc));
            reg signed [ACCW-1:0] acc;
            /* verilator lint_off UNUSEDSIGNAL */ // bits above ACCW: the exact sum fits ACCW
            wire signed [SW-1:0] nxt = (acc_first ? {SW{1'b0}} : {{(SW - ACCW){acc[ACCW-1]}}, acc})
                                     + {{(SW - TW){tsum[TW-1]}}, tsum} + {{(SW - 1){1'b0}}, tc};
            /* verilator lint_on UNUSEDSIGNAL */
            always @(posedge clk) begin
                if (acc_en) acc <= nxt[ACCW-1:0];
            end
            assign accs[p*ACCW +: ACCW] = acc;
        end
    endgenerate
endmodule
