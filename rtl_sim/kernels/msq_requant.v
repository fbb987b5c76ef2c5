// Requantization, ReLU and clamp (the IR arithmetic contract, msq/ir/arith.py):
//   y = clamp(round_half_up((acc * m + bias) * 2^-n), LO, HI) = clamp((acc * m + bias + 2^(n-1)) >>> n, LO, HI)
// (acc * m + bias for n = 0); the bias is in 2^-n output steps. ReLU is LO = 0.
// The product acc * m is built from shifts and adds over the bits of m (m is signed, its top
// bit weighs -2^(MULTW-1)), so requantization never takes a DSP slice. MULTW and SHIFTW come
// from the IR contract (msq/ir/arith.py MULT_BITS, SHIFT_BITS); the generator always passes them.
module msq_requant #(
    parameter integer ACCW = 16,  // accumulator width
    parameter integer MULTW = 16, // signed multiplier width
    parameter integer SHIFTW = 6, // shift width
    parameter integer PW   = 33,  // datapath width: >= the IR's requant_bits, > ACCW and > max shift + 1
    parameter integer OW   = 4,   // output width
    parameter signed [PW-1:0] LO = 0,   // clamp bounds (output format range), PW bits wide
    parameter signed [PW-1:0] HI = 15
) (
    input  wire signed [ACCW-1:0] acc,
    input  wire signed [MULTW-1:0] mult,
    input  wire signed [PW-1:0]   bias,
    input  wire [SHIFTW-1:0]      shift,
    output wire [OW-1:0]          y
);
    localparam signed [PW-1:0] ONE  = 1;

    wire signed [PW-1:0] a = {{(PW - ACCW){acc[ACCW-1]}}, acc};
    reg  signed [PW-1:0] prod;
    integer i;
    always @* begin
        prod = {PW{1'b0}};
        for (i = 0; i < MULTW - 1; i = i + 1)
            if (mult[i]) prod = prod + (a <<< i);
        if (mult[MULTW-1]) prod = prod - (a <<< (MULTW - 1));
    end

    wire signed [PW-1:0] half    = (shift == {SHIFTW{1'b0}}) ? {PW{1'b0}} : (ONE <<< (shift - 1'b1));
    wire signed [PW-1:0] rounded = (prod + bias + half) >>> shift;
    /* verilator lint_off UNUSEDSIGNAL */ // only the low OW bits of the clamped value are the output
    wire signed [PW-1:0] clamped = (rounded < LO) ? LO : (rounded > HI) ? HI : rounded;
    /* verilator lint_on UNUSEDSIGNAL */
    assign y = clamped[OW-1:0];
endmodule
