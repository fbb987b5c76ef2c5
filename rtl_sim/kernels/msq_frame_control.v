// Frame control of a layer: it starts a frame from idle (start) when the oldest buffer of each
// input is full and it can claim a buffer of each reader of its output, and goes on to the next
// frame at a frame's last step (go_on) when those hold again. Its claim of the readers' buffers
// leaves through a register (out_claim), so no path runs from this layer's control across the
// device into another's; the readers' can_claim is stale in the cycle the claim is set, so a
// frame cannot go on in that cycle (a one-step frame takes two).
module msq_frame_control (
    input  wire clk,
    input  wire rst_n,
    input  wire run,            // the layer issues steps
    input  wire frame_end,      // ... and this is a frame's last one
    input  wire rd_full,        // every input's oldest buffer holds a whole frame
    input  wire rd_next_full,   // ... and so does the one after it
    input  wire out_can_claim,  // every reader of the output has a free buffer
    output wire start,
    output wire go_on,
    output wire out_claim
);
    reg claim_q;
    assign start     = !run && rd_full && out_can_claim;
    assign go_on     = frame_end && rd_next_full && out_can_claim && !claim_q;
    assign out_claim = claim_q;
    always @(posedge clk) claim_q <= rst_n && (start || go_on);
endmodule
