// Step control of an engine: the issue signals (v, first, last) delayed to the cycle the
// accumulators add (LAT-1 cycles after issue) and to the cycle they hold a finished fold (LAT).
// Bit i of each delay line is its signal i+1 cycles after issue.
module msq_step_control #(
    parameter integer LAT = 4   // issue -> the accumulators hold the fold
) (
    input  wire clk,
    input  wire rst_n,
    input  wire v,
    input  wire first,
    input  wire last,
    output wire acc_en,     // the accumulators add this cycle ...
    output wire acc_first,  // ... starting a fold
    output wire acc_pre,    // the accumulators finish a fold next cycle
    output wire acc_v       // ... they hold it now
);
    reg [LAT-1:0] dv, df, dl;
    always @(posedge clk) begin
        dv <= rst_n ? {dv[LAT-2:0], v} : {LAT{1'b0}};
        df <= {df[LAT-2:0], first};
        dl <= {dl[LAT-2:0], last};
    end
    assign acc_en    = dv[LAT-2];
    assign acc_first = df[LAT-2];
    assign acc_pre   = dl[LAT-2] & dv[LAT-2];
    assign acc_v     = dl[LAT-1] & dv[LAT-1];
endmodule
