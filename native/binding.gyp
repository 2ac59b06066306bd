{
  "targets": [
    {
      "target_name": "mse_blas",
      "sources": ["mse_blas.cc"],
      "cflags_cc": ["-O3", "-fno-trapping-math", "-fno-math-errno"],
      "libraries": ["-l:libopenblas.so.0"]
    }
  ]
}
