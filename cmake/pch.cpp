// The translation unit that owns the LibTorch precompiled header (CMakeLists.txt, dqe_torch_pch).
