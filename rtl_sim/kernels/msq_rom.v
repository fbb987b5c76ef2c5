// Read-only memory: contents from the INIT parameter (word 0 in the low W bits), read through two
// registers (address at cycle 0, data at cycle 2), the shape block RAM has with its output
// register. BLOCK = 1 asks Yosys and Vivado for block RAM; otherwise the tools build the ROM from
// LUTs. The generator chooses by size. Each ROM's contents live in their own generated wrapper module.
module msq_rom #(
    parameter integer W     = 8,   // word width
    parameter integer DEPTH = 4,   // words
    parameter integer AW    = 2,   // address width, 2^AW >= DEPTH
    parameter integer BLOCK = 0,
    parameter [W*DEPTH-1:0] INIT = {(W*DEPTH){1'b0}}
) (
    input  wire          clk,
    input  wire [AW-1:0] addr,
    output reg  [W-1:0]  data
);
    reg [W-1:0] q;
    integer i;
    generate
        if (BLOCK != 0) begin : g_block
            (* rom_style = "block", ram_style = "block" *) reg [W-1:0] mem [0:DEPTH-1];
            initial for (i = 0; i < DEPTH; i = i + 1) mem[i] = INIT[i*W +: W];
            always @(posedge clk) q <= mem[addr];
        end else begin : g_lut
            reg [W-1:0] mem [0:DEPTH-1];  // the tools build small ROMs from LUTs
            initial for (i = 0; i < DEPTH; i = i + 1) mem[i] = INIT[i*W +: W];
            always @(posedge clk) q <= mem[addr];
        end
    endgenerate
    always @(posedge clk) data <= q;
endmodule
