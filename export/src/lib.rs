//! Training (tch, behind a feature) and the libtorch-free ONNX writer for libbridge model packages.
