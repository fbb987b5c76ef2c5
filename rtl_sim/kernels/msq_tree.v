// Pipelined adder tree with one carry-in per leaf (folded layer): sum = sum of the N signed IW-bit
// leaves + sum of cin. Each adder absorbs one carry-in (a+b+c maps onto one carry chain with CI);
// the last leaf's carry leaves the tree as cout, for the accumulator's carry-in. This is how the
// SP2 engine folds the sign of each product into XOR + carry-in. Built recursively: node height H
// (>= clog2(N)) grows the width by one bit per level, and a register sits after every level whose
// height is a multiple of RSTEP, so every leaf sees the same latency H / RSTEP.
module msq_tree #(
    parameter integer N     = 2,  // leaves
    parameter integer IW    = 8,  // leaf width (signed)
    parameter integer H     = 1,  // height of this node, >= clog2(N)
    parameter integer RSTEP = 2   // register every RSTEP levels
) (
    /* verilator lint_off UNUSEDSIGNAL */ // nodes below the first register level use no clock
    input  wire                   clk,
    /* verilator lint_on UNUSEDSIGNAL */
    input  wire [N*IW-1:0]        leaves,
    input  wire [N-1:0]           cin,
    output wire signed [IW+H-1:0] sum,
    output wire                   cout
);
    localparam integer OW = IW + H;
    wire signed [OW-1:0] s;
    wire                 c;
    generate
        if (H == 0) begin : g_leaf
            assign s = leaves;
            assign c = cin[0];
        end else if (N == 1) begin : g_pass
            wire signed [OW-2:0] cs;
            wire                 cc;
            msq_tree #(.N(1), .IW(IW), .H(H - 1), .RSTEP(RSTEP)) sub (
                .clk(clk), .leaves(leaves), .cin(cin), .sum(cs), .cout(cc));
            assign s = {cs[OW-2], cs};
            assign c = cc;
        end else begin : g_node
            localparam integer NL = N - N / 2;
            localparam integer NR = N / 2;
            wire signed [OW-2:0] ls, rs;
            wire                 lc, rc;
            msq_tree #(.N(NL), .IW(IW), .H(H - 1), .RSTEP(RSTEP)) left (
                .clk(clk), .leaves(leaves[NL*IW-1:0]), .cin(cin[NL-1:0]), .sum(ls), .cout(lc));
            msq_tree #(.N(NR), .IW(IW), .H(H - 1), .RSTEP(RSTEP)) right (
                .clk(clk), .leaves(leaves[N*IW-1:NL*IW]), .cin(cin[N-1:NL]), .sum(rs), .cout(rc));
            assign s = {ls[OW-2], ls} + {rs[OW-2], rs} + {{(OW - 1){1'b0}}, lc};
            assign c = rc;
        end
        if (H > 0 && H % RSTEP == 0) begin : g_reg
            reg signed [OW-1:0] sr;
            reg                 cr;
            always @(posedge clk) sr <= s;
            // the carry is a weight's sign, delayed: rows with the same signs would share these
            // registers after synthesis (opt_merge), one driving another row's adders across the
            // device (on ECP5 that route, 4.7 ns, was the critical path); kept per row
            (* keep *) always @(posedge clk) cr <= c;
            assign sum  = sr;
            assign cout = cr;
        end else begin : g_wire
            assign sum  = s;
            assign cout = c;
        end
    endgenerate
endmodule
