// SP2 engine of the folded layer: PE rows x SIMD inputs per cycle, no multiplier. Weight code
// (sign, k1, k2) per product (docs/ir.md): |x*w| = (x <<< (E-k1)) + (x <<< (E-k2)), a zero index
// adding nothing; the sign is folded into XOR + carry-in (-m = ~m + 1), the carries riding the
// adder tree's carry inputs. Each row sums its SIMD products in one pipelined tree and accumulates
// over the SF steps of a fold. The weight word w holds PE*SIMD codes (row-major: row p, column s).
// Timing: a step is issued (v) at cycle 0; its input word x and weight word w arrive at cycle 2; acc_v is high in the
// cycle the accumulators hold a finished fold (LAT cycles after its last step), acc_pre one cycle
// before.
module msq_sp2_engine #(
    parameter integer PE     = 2,
    parameter integer SIMD   = 2,
    parameter integer XW     = 5,   // signed activation width (unsigned inputs get a zero bit)
    parameter integer KW1    = 2,   // code field widths: k1, k2 (k2 at least 1 bit)
    parameter integer KW2    = 1,
    parameter integer ACCW   = 16,
    parameter integer RSTEP  = 2   // adder tree register spacing (levels)
) (
    input  wire                 clk,
    input  wire                 rst_n,
    input  wire                 v,
    input  wire                 first,
    input  wire                 last,
    input  wire [SIMD*XW-1:0]   x,
    input  wire [PE*SIMD*(1+KW1+KW2)-1:0] w,
    output wire                 acc_pre,
    output wire                 acc_v,
    output wire [PE*ACCW-1:0]   accs
);
    localparam integer CW  = 1 + KW1 + KW2;
    localparam integer E   = (1 << KW1) - 1;
    localparam integer MW  = XW + E + 1;          // |x| * 2^(E+1) fits, signed
    localparam integer H   = $clog2(SIMD);
    localparam integer TW  = MW + H;              // tree output width
    localparam integer SW  = (ACCW > TW ? ACCW : TW) + 1;  // sum width (top bits trimmed by synthesis)
    localparam integer LAT = 2 + H / RSTEP + 1;   // issue -> acc_v
    localparam [KW1:0] E1  = E[KW1:0];


    wire acc_en, acc_first;
    msq_step_control #(.LAT(LAT)) control (
        .clk(clk), .rst_n(rst_n), .v(v), .first(first), .last(last),
        .acc_en(acc_en), .acc_first(acc_first), .acc_pre(acc_pre), .acc_v(acc_v));

    genvar p, s;
    generate
        for (p = 0; p < PE; p = p + 1) begin : g_row
            wire [SIMD*MW-1:0] leaves;
            wire [SIMD-1:0]    signs;
            for (s = 0; s < SIMD; s = s + 1) begin : g_col
                wire [CW-1:0]        code = w[(p * SIMD + s) * CW +: CW];
                wire [KW1-1:0]       k1   = code[KW2 +: KW1];
                wire [KW2-1:0]       k2   = code[0 +: KW2];
                wire signed [MW-1:0] xe   = {{(MW - XW){x[s*XW+XW-1]}}, x[s*XW +: XW]};
                wire [KW1:0]         sh1  = E1 - {1'b0, k1};
                wire [KW1:0]         sh2  = E1 - {{(KW1 + 1 - KW2){1'b0}}, k2};
                wire signed [MW-1:0] t1   = (k1 == {KW1{1'b0}}) ? {MW{1'b0}} : (xe <<< sh1);
                wire signed [MW-1:0] t2   = (k2 == {KW2{1'b0}}) ? {MW{1'b0}} : (xe <<< sh2);
                assign signs[s] = code[CW-1];
                assign leaves[s*MW +: MW] = (t1 + t2) ^ {MW{code[CW-1]}};
            end
            wire signed [TW-1:0] tsum;
            wire                 tc;
            msq_tree #(.N(SIMD), .IW(MW), .H(H), .RSTEP(RSTEP)) tree (
                .clk(clk), .leaves(leaves), .cin(signs), .sum(tsum), .cout(tc));
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
