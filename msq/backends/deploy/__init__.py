"""Board deployment: a Vivado block design (Zynq PS7 + AXI DMA + the MSQ core) and a PYNQ driver."""
