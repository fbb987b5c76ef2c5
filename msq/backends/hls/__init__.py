"""HLS backend: Vitis HLS C++ projects from the IR, bit-exact C simulation with g++, Vitis runs."""
