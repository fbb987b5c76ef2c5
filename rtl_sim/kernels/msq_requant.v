// Requantization, ReLU and clamp (the IR arithmetic contract, msq/ir/arith.py):
//   y = clamp(round_half_up((acc * m + bias) * 2^-n), LO, HI) = clamp((acc * m + bias + 2^(n-1)) >>> n, LO, HI)
// (acc * m + bias for n = 0); the bias is in 2^-n output steps. ReLU is LO = 0.
// The product acc * m is built from shifts and adds over the
// bits of m (m is signed, bit 15 weighs -2^15), so requantization never takes a DSP slice.
module msq_requant #(
    parameter integer ACCW = 16,  // accumulator width
    parameter integer PW   = 33,  // datapath width: >= the IR's requant_bits, > ACCW and > max shift + 1
    parameter integer OW   = 4,   // output width
    parameter signed [PW-1:0] LO = 0,   // clamp bounds (output format range), PW bits wide
    parameter signed [PW-1:0] HI = 15
) (
    input  wire signed [ACCW-1:0] acc,
    input  wire signed [15:0]     mult,
    input  wire signed [PW-1:0]   bias,
    input  wire [5:0]             shift,
    output wire [OW-1:0]          y
);
    localparam signed [PW-1:0] ONE  = 1;

    wire signed [PW-1:0] a = {{(PW - ACCW){acc[ACCW-1]}}, acc};
    reg  signed [PW-1:0] prod;
    integer i;
    always @* begin
        prod = {PW{1'b0}};
        for (i = 0; i < 15; i = i + 1)
            if (mult[i]) prod = prod + (a <<< i);
        if (mult[15]) prod = prod - (a <<< 15);
    end

    wire signed [PW-1:0] half    = (shift == 6'd0) ? {PW{1'b0}} : (ONE <<< (shift - 6'd1));
    wire signed [PW-1:0] rounded = (prod + bias + half) >>> shift;
    /* verilator lint_off UNUSEDSIGNAL */ // only the low OW bits of the clamped value are the output
    wire signed [PW-1:0] clamped = (rounded < LO) ? LO : (rounded > HI) ? HI : rounded;
    /* verilator lint_on UNUSEDSIGNAL */
    assign y = clamped[OW-1:0];
endmodule
