// Fixed-point MAC: acc_out = acc_in + x * w, one signed multiply sized for a DSP48 (<= 25 x 18).
// Sums are exact modulo 2^ACCW; the IR guarantees every partial sum fits ACCW signed bits.
module msq_fixed_mac #(
    parameter integer XW   = 5,   // signed input width (activation already sign/zero extended)
    parameter integer WW   = 4,   // signed weight width
    parameter integer ACCW = 16   // accumulator width
) (
    input  wire signed [XW-1:0]   x,
    input  wire signed [WW-1:0]   w,
    input  wire signed [ACCW-1:0] acc_in,
    output wire signed [ACCW-1:0] acc_out
);
    localparam integer PW = XW + WW;
    localparam integer SW = (ACCW > PW ? ACCW : PW) + 1;

    (* use_dsp = "yes" *) wire signed [PW-1:0] prod = x * w;
    /* verilator lint_off UNUSEDSIGNAL */ // the sum's top bits only exist to keep the add exact
    wire signed [SW-1:0] sum = {{(SW - ACCW){acc_in[ACCW-1]}}, acc_in} + {{(SW - PW){prod[PW-1]}}, prod};
    /* verilator lint_on UNUSEDSIGNAL */
    assign acc_out = sum[ACCW-1:0];
endmodule
