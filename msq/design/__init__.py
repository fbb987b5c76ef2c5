"""Design decisions: what each cell costs (cost model, calibration), what a design will use
(estimate), and which design to build (planner, design-space sweep). Reads the IR and boards;
the backends only emit what is decided here."""
