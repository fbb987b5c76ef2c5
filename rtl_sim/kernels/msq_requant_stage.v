// Requantization stage of one MVU engine, per docs/ir.md:
//   y = clamp((acc * mult + bias + 2^(shift-1)) >>> shift, LO, HI)   (no rounding term at shift 0).
// The row constants come from a ROM (Q_FILE) holding, per (fold, step), NRQ fields
// {shift, bias_r, mult} (MULTW, RQW, SHIFTW bits) with bias_r = bias + 2^(shift-1) (the rounding term is a
// per-row constant, so it is folded in by the generator). A finished fold's PE accumulators are
// held, then NRQ units requantize NRQ rows per cycle over STEPS = ceil(PE / NRQ) cycles
// (STEPS <= SF), pipelined: select (the held row and its constants, registered: the multiplier's
// operands come from flip-flops), multiply, add, shift, clamp; the next fold accumulates meanwhile.
// beat_v pulses when the beat register holds all PE outputs of the fold.
module msq_requant_stage #(
    parameter integer PE    = 2,
    parameter integer NRQ   = 1,
    parameter integer STEPS = 2,
    parameter integer NF    = 1,    // folds per vector
    parameter integer ACCW  = 16,
    parameter integer RQW   = 32,   // the IR's requant_bits
    parameter integer OBITS = 4,
    parameter signed [OBITS:0] LO = 0,
    parameter signed [OBITS:0] HI = 15,
    parameter integer QAW   = 1,    // constant ROM address width
    parameter integer MULTW = 16,   // requantizer constant widths (msq/ir/arith.py)
    parameter integer SHIFTW = 6
) (
    input  wire                 clk,
    input  wire                 rst_n,
    input  wire                 acc_pre,  // the accumulators finish a fold next cycle
    input  wire                 acc_v,    // ... they hold it now
    input  wire [PE*ACCW-1:0]   accs,
    output wire [QAW-1:0]       qaddr,    // constant ROM address; its word arrives 2 cycles later
    input  wire [NRQ*(MULTW+RQW+SHIFTW)-1:0] q,
    output reg                  beat_v,
    output reg  [PE*OBITS-1:0]  beat
);
    localparam integer QW    = MULTW + RQW + SHIFTW;
    localparam integer PRW   = (RQW > ACCW + MULTW ? RQW : ACCW + MULTW) + 1;  // datapath width
    localparam integer TB    = STEPS > 1 ? $clog2(STEPS) : 1;
    localparam integer QDEPTH = NF * STEPS;
    localparam [TB-1:0]  T_LAST = STEPS[TB-1:0] - 1'b1;
    localparam [QAW-1:0] Q_LAST = QDEPTH[QAW-1:0] - 1'b1;
    localparam signed [PRW-1:0] LO_X = {{(PRW - OBITS - 1){LO[OBITS]}}, LO};
    localparam signed [PRW-1:0] HI_X = {{(PRW - OBITS - 1){HI[OBITS]}}, HI};

    // sequencer: STEPS active cycles from acc_pre, one constant-ROM word each
    reg          run;
    reg [TB-1:0] t;
    reg [QAW-1:0] qa;
    wire          act = acc_pre || run;
    wire [TB-1:0] ti  = acc_pre ? {TB{1'b0}} : t;
    always @(posedge clk) begin
        if (!rst_n) begin
            run <= 1'b0;
            t   <= {TB{1'b0}};
            qa  <= {QAW{1'b0}};
        end else if (act) begin
            qa  <= (qa == Q_LAST) ? {QAW{1'b0}} : qa + 1'b1;
            run <= (ti != T_LAST);
            t   <= ti + 1'b1;
        end
    end
    assign qaddr = qa;

    // the finished fold's accumulators, padded with zero rows to STEPS * NRQ
    localparam integer PAD = STEPS * NRQ - PE;
    wire [STEPS*NRQ*ACCW-1:0] accp;
    generate
        if (PAD > 0) begin : g_pad
            assign accp = {{(PAD * ACCW){1'b0}}, accs};
        end else begin : g_full
            assign accp = accs;
        end
    endgenerate

    // step index and activity through the pipeline: ROM (2), select, multiply, add, shift, clamp
    reg [5:0]      pa;
    reg [TB*6-1:0] pt;
    always @(posedge clk) begin
        if (!rst_n) pa <= 6'd0;
        else        pa <= {pa[4:0], act};
        pt <= {pt[TB*5-1:0], ti};
    end
    wire [TB-1:0] t2 = pt[TB*2-1:TB];     // step whose constants leave the ROM now
    wire [TB-1:0] t6 = pt[TB*6-1:TB*5];   // step being clamped into the beat (6 cycles on)

    genvar u;
    generate
        for (u = 0; u < NRQ; u = u + 1) begin : g_unit
            wire signed [MULTW-1:0] mult  = q[u*QW +: MULTW];
            wire signed [RQW-1:0]   bias  = q[u*QW + MULTW +: RQW];
            wire [SHIFTW-1:0]       shift = q[u*QW + MULTW + RQW +: SHIFTW];
            // this unit's rows of the held fold, row k * NRQ + u at index k: selected by the step
            // alone, no index arithmetic in front of the multiplexer (a multiply by NRQ was the
            // critical path on ECP5)
            reg [ACCW-1:0] hold [0:STEPS-1];
            integer k0;
            always @(posedge clk) begin
                if (acc_v) for (k0 = 0; k0 < STEPS; k0 = k0 + 1) hold[k0] <= accp[(k0 * NRQ + u) * ACCW +: ACCW];
            end
            reg signed [ACCW-1:0]  a0;
            reg signed [MULTW-1:0] m0;
            reg signed [RQW-1:0]   b0;
            reg [SHIFTW-1:0]       sh0;
            reg signed [PRW-1:0] prod, sum, shd;
            reg signed [PRW-1:0] b1;
            reg [SHIFTW-1:0]     sh1, sh2;
            always @(posedge clk) begin
                a0   <= hold[t2];
                m0   <= mult;
                b0   <= bias;
                sh0  <= shift;
                prod <= a0 * m0;
                b1   <= {{(PRW - RQW){b0[RQW-1]}}, b0};
                sh1  <= sh0;
                sum  <= prod + b1;
                sh2  <= sh1;
                shd  <= sum >>> sh2;
            end
            /* verilator lint_off UNUSEDSIGNAL */ // only the low OBITS bits of the clamped value are the output
            wire signed [PRW-1:0] y = (shd < LO_X) ? LO_X : (shd > HI_X) ? HI_X : shd;
            /* verilator lint_on UNUSEDSIGNAL */
            integer k;
            always @(posedge clk) begin
                for (k = 0; k < STEPS; k = k + 1)
                    if (pa[5] && t6 == k[TB-1:0] && k * NRQ + u < PE)
                        beat[(k * NRQ + u) * OBITS +: OBITS] <= y[OBITS-1:0];
            end
        end
    endgenerate

    always @(posedge clk) begin
        if (!rst_n) beat_v <= 1'b0;
        else        beat_v <= pa[5] && t6 == T_LAST;
    end
endmodule
