{
  "targets": [
    {
      "target_name": "mse_blas",
      "sources": ["mse_blas.cc"],
      "cflags_cc": ["-O3"],
      "libraries": ["-l:libopenblas.so.0"]
    }
  ]
}
