// Ping-pong frame buffer: the stream glue between layers. The write side accepts one element per
// cycle (valid/ready) into one bank while the layer engine reads the other bank at random; a bank
// is handed over when it holds a whole frame (DEPTH elements) and handed back by rd_release.
module msq_pingpong_buffer #(
    parameter integer W     = 4,   // element width
    parameter integer DEPTH = 64,  // elements per frame
    parameter integer AW    = 6    // address width, 2^AW >= DEPTH
) (
    input  wire          clk,
    input  wire          rst_n,      // synchronous, active low
    input  wire          in_valid,
    output wire          in_ready,
    input  wire [W-1:0]  in_data,
    output wire          rd_full,    // the read bank holds a complete frame
    input  wire [AW-1:0] rd_addr,
    output wire [W-1:0]  rd_data,
    input  wire          rd_release  // the engine is done with the read bank
);
    localparam [AW-1:0] LAST = DEPTH[AW-1:0] - 1'b1;

    reg [W-1:0]  mem [0:(2 << AW) - 1];  // bank b, address a at {b, a}
    reg [1:0]    full;
    reg          wr_bank;
    reg          rd_bank;
    reg [AW-1:0] wr_addr;

    assign in_ready = !full[wr_bank];
    assign rd_full  = full[rd_bank];
    assign rd_data  = mem[{rd_bank, rd_addr}];

    always @(posedge clk) begin
        if (in_valid && in_ready)
            mem[{wr_bank, wr_addr}] <= in_data;
    end

    always @(posedge clk) begin
        if (!rst_n) begin
            full    <= 2'b00;
            wr_bank <= 1'b0;
            rd_bank <= 1'b0;
            wr_addr <= {AW{1'b0}};
        end else begin
            if (in_valid && in_ready) begin
                if (wr_addr == LAST) begin
                    wr_addr        <= {AW{1'b0}};
                    full[wr_bank]  <= 1'b1;
                    wr_bank        <= !wr_bank;
                end else begin
                    wr_addr <= wr_addr + 1'b1;
                end
            end
            if (rd_release) begin
                full[rd_bank] <= 1'b0;
                rd_bank       <= !rd_bank;
            end
        end
    end
endmodule
