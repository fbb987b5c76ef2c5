// SP2 shift-add MAC (no multiplier): acc_out = acc_in +/- ((x <<< (E - k1)) + (x <<< (E - k2))),
// a zero index contributing nothing. The code (sign, k1, k2) is the IR's SP2 weight code.
// Sums are exact modulo 2^ACCW; the IR guarantees every partial sum fits ACCW signed bits.
module msq_sp2_mac #(
    parameter integer XW   = 5,   // signed input width (activation already sign/zero extended)
    parameter integer KW1  = 2,   // width of the first index k1
    parameter integer KW2  = 1,   // width of the second index k2
    parameter integer E    = 3,   // SP2 exponent: w_int = +/-(2^(E-k1) + 2^(E-k2))
    parameter integer ACCW = 16   // accumulator width
) (
    input  wire signed [XW-1:0]   x,
    input  wire                   sign,
    input  wire [KW1-1:0]         k1,
    input  wire [KW2-1:0]         k2,
    input  wire signed [ACCW-1:0] acc_in,
    output wire signed [ACCW-1:0] acc_out
);
    localparam integer PW = XW + E + 1;                     // holds (x << E) + (x << E)
    localparam integer SW = (ACCW > PW ? ACCW : PW) + 1;    // sum width, wider than both operands
    localparam [4:0] E5 = E[4:0];

    wire signed [PW-1:0] xe  = {{(PW - XW){x[XW-1]}}, x};
    wire [4:0]           sh1 = E5 - {{(5 - KW1){1'b0}}, k1};
    wire [4:0]           sh2 = E5 - {{(5 - KW2){1'b0}}, k2};
    wire signed [PW-1:0] t1  = (k1 == {KW1{1'b0}}) ? {PW{1'b0}} : (xe <<< sh1);
    wire signed [PW-1:0] t2  = (k2 == {KW2{1'b0}}) ? {PW{1'b0}} : (xe <<< sh2);
    wire signed [PW-1:0] mag = t1 + t2;
    wire signed [PW-1:0] prod = sign ? -mag : mag;
    /* verilator lint_off UNUSEDSIGNAL */ // the sum's top bits only exist to keep the add exact
    wire signed [SW-1:0] sum = {{(SW - ACCW){acc_in[ACCW-1]}}, acc_in} + {{(SW - PW){prod[PW-1]}}, prod};
    /* verilator lint_on UNUSEDSIGNAL */
    assign acc_out = sum[ACCW-1:0];
endmodule
