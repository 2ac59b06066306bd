/*
 * mse_blas: optional native GEMM and patch kernels for mse's wasm compute layer.
 *
 * tfjs's wasm backend keeps tensors in the wasm heap, which JavaScript sees as an ArrayBuffer. These
 * functions take Float32Array views of that heap and work on them in place with OpenBLAS's sgemm
 * (AVX2/AVX-512, about twice the GEMM throughput of wasm SIMD128 here). No tensor is copied in or
 * out. OpenBLAS is loaded from Debian's libopenblas0 (prototypes declared below, so only the runtime
 * library is needed). Built by scripts/build-native.mjs; when it is absent mse uses pure wasm.
 */
#include <node_api.h>
#include <stdint.h>
#include <math.h>
#include <string.h>
#include <stdlib.h>
#include <pthread.h>
#include <time.h>

/* mse's thread count (setThreads). OpenBLAS itself stays single-threaded: its idle workers spin
 * between calls and took a core from these threads (a MNIST CNN step on two threads: 4.8k examples/s
 * with OpenBLAS's pool, 4.9-5.7k without), so GEMMs and convolutions split their rows here instead. */
static int g_threads = 1;

enum { CblasRowMajor = 101 };
enum { CblasNoTrans = 111, CblasTrans = 112 };
extern "C" {
void cblas_sgemm(int order, int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda, const float *b,
                 int ldb, float beta, float *c, int ldc);
void openblas_set_num_threads(int n);
int openblas_get_num_threads(void);
char *openblas_get_config(void);
}

#define CHECK(call)                                                      \
  do {                                                                   \
    if ((call) != napi_ok) {                                             \
      napi_throw_error(env, NULL, "mse_blas: bad arguments: " #call);    \
      return NULL;                                                       \
    }                                                                    \
  } while (0)

static int f32arg(napi_env env, napi_value v, float **data, size_t *len) {
  napi_typedarray_type t;
  void *p;
  napi_value ab;
  size_t off;
  if (napi_get_typedarray_info(env, v, &t, len, &p, &ab, &off) != napi_ok || t != napi_float32_array) return 0;
  *data = (float *)p;
  return 1;
}

static int64_t iarg(napi_env env, napi_value v) {
  int64_t x = 0;
  napi_get_value_int64(env, v, &x);
  return x;
}

#define F32(i, name)                                                                  \
  float *name;                                                                         \
  size_t name##_len;                                                                   \
  if (!f32arg(env, argv[i], &name, &name##_len)) {                                     \
    napi_throw_type_error(env, NULL, "mse_blas: argument " #i " must be a Float32Array"); \
    return NULL;                                                                       \
  }

/* A strided batch of GEMMs, each split into `blocks` blocks of rows; block j of every batch item goes
 * to thread j. */
struct GemmCtx {
  const float *a, *b;
  float *c;
  int64_t m, n, k, ta, tb, sa, sb;
  float beta;
  int64_t batch;
  int blocks;
};
static void gemm_share(void *p, int t, int T) {
  GemmCtx *g = (GemmCtx *)p;
  int64_t r0 = g->m * t / T, r1 = g->m * (t + 1) / T;
  if (r1 <= r0) return;
  for (int64_t i = 0; i < g->batch; i++) {
    /* rows r0…r1 of op(a): row r0 of a, or (transposed) column r0 of the [k, m] array */
    const float *a = g->a + i * g->sa + (g->ta ? r0 : r0 * g->k);
    cblas_sgemm(CblasRowMajor, g->ta ? CblasTrans : CblasNoTrans, g->tb ? CblasTrans : CblasNoTrans, (int)(r1 - r0),
                (int)g->n, (int)g->k, 1.0f, a, g->ta ? (int)g->m : (int)g->k, g->b + i * g->sb,
                g->tb ? (int)g->k : (int)g->n, g->beta, g->c + i * g->m * g->n + r0 * g->n, (int)g->n);
  }
}
typedef void (*ShareFn)(void *ctx, int t, int T);
static void parallel(ShareFn fn, void *ctx, int T);

/* sgemm(a, b, c, batch, m, n, k, transA, transB, strideA, strideB, beta)
 * c[i] = op(a[i]) · op(b[i]) + beta·c[i] for i < batch, row-major; stride 0 broadcasts. */
static napi_value sgemm(napi_env env, napi_callback_info info) {
  size_t argc = 12;
  napi_value argv[12];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 12) {
    napi_throw_error(env, NULL, "mse_blas.sgemm: 12 arguments expected");
    return NULL;
  }
  F32(0, a);
  F32(1, b);
  F32(2, c);
  int64_t batch = iarg(env, argv[3]), m = iarg(env, argv[4]), n = iarg(env, argv[5]), k = iarg(env, argv[6]);
  int64_t ta = iarg(env, argv[7]), tb = iarg(env, argv[8]), sa = iarg(env, argv[9]), sb = iarg(env, argv[10]);
  double beta;
  napi_get_value_double(env, argv[11], &beta);
  if ((size_t)((batch - 1) * sa + m * k) > a_len || (size_t)((batch - 1) * sb + k * n) > b_len || (size_t)(batch * m * n) > c_len) {
    napi_throw_range_error(env, NULL, "mse_blas.sgemm: operand smaller than its shape");
    return NULL;
  }
  GemmCtx g = {a, b, c, m, n, k, ta, tb, sa, sb, (float)beta, batch, 1};
  /* row blocks for the threads when the product is worth a thread (≥ 2M multiply-adds per block);
   * every row's dot products are the same whichever block it falls in */
  int T = g_threads;
  while (T > 1 && (m / T < 16 || m * n * k / T < (1 << 21))) T--;
  g.blocks = T;
  parallel(gemm_share, &g, T);
  return NULL;
}

/* c[r, j] += bias[j] (bias may be NULL); act 1 = relu. */
static void bias_act_rows(float *c, const float *bias, int64_t rows, int64_t cols, int act) {
  for (int64_t r = 0; r < rows; r++) {
    float *row = c + r * cols;
    if (bias)
      for (int64_t j = 0; j < cols; j++) row[j] += bias[j];
    if (act == 1)
      for (int64_t j = 0; j < cols; j++) row[j] = row[j] > 0 ? row[j] : 0;
  }
}

/* biasAct(c, bias, rows, cols, act): c[r, j] += bias[j] (if bias has cols entries); act 1 = relu. */
static napi_value bias_act(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  F32(0, c);
  F32(1, bias);
  int64_t rows = iarg(env, argv[2]), cols = iarg(env, argv[3]), act = iarg(env, argv[4]);
  if ((size_t)(rows * cols) > c_len) {
    napi_throw_range_error(env, NULL, "mse_blas.biasAct: output smaller than its shape");
    return NULL;
  }
  bias_act_rows(c, bias_len >= (size_t)cols && cols > 0 ? bias : NULL, rows, cols, (int)act);
  return NULL;
}

/* A run of r floats. A first convolution's runs are short (5×5 over one channel: 5 floats), where
 * a memcpy call per run cost more than the copy (im2col of a 256-image MNIST batch: 3 ms); fixed-size
 * moves inline. GCC would turn the tail loop back into a memcpy call: not here. */
__attribute__((optimize("no-tree-loop-distribute-patterns"))) static inline void
copy_run(float *__restrict o, const float *__restrict s, int64_t r) {
  int64_t t = 0;
  for (; t + 8 <= r; t += 8) memcpy(o + t, s + t, 32);
  if (t + 4 <= r) {
    memcpy(o + t, s + t, 16);
    t += 4;
  }
  for (; t < r; t++) o[t] = s[t];
}

/* col [N·OH·OW, FH·FW·C] from NHWC x. */
static void im2col_rows(const float *x, float *col, int64_t N, int64_t H, int64_t W, int64_t C, int64_t FH, int64_t FW,
                        int64_t SH, int64_t SW, int64_t pt, int64_t pl, int64_t OH, int64_t OW) {
  float *o = col;
  for (int64_t n = 0; n < N; n++)
    for (int64_t oh = 0; oh < OH; oh++)
      for (int64_t ow = 0; ow < OW; ow++)
        for (int64_t fh = 0; fh < FH; fh++) {
          int64_t ih = oh * SH + fh - pt;
          int64_t iw0 = ow * SW - pl;
          if (ih < 0 || ih >= H) {
            memset(o, 0, sizeof(float) * FW * C);
            o += FW * C;
            continue;
          }
          if (iw0 >= 0 && iw0 + FW <= W) { /* whole row of the window inside: one contiguous run */
            copy_run(o, x + ((n * H + ih) * W + iw0) * C, FW * C);
            o += FW * C;
            continue;
          }
          for (int64_t fw = 0; fw < FW; fw++) {
            int64_t iw = ow * SW + fw - pl;
            if (iw < 0 || iw >= W) memset(o, 0, sizeof(float) * C);
            else copy_run(o, x + ((n * H + ih) * W + iw) * C, C);
            o += C;
          }
        }
}

/* dx [N, H, W, C] = 0, then the patch rows of col added back where they came from (im2col's adjoint). */
static void col2im_rows(const float *col, float *dx, int64_t N, int64_t H, int64_t W, int64_t C, int64_t FH, int64_t FW,
                        int64_t SH, int64_t SW, int64_t pt, int64_t pl, int64_t OH, int64_t OW) {
  memset(dx, 0, sizeof(float) * N * H * W * C);
  const float *o = col;
  for (int64_t n = 0; n < N; n++)
    for (int64_t oh = 0; oh < OH; oh++)
      for (int64_t ow = 0; ow < OW; ow++)
        for (int64_t fh = 0; fh < FH; fh++) {
          int64_t ih = oh * SH + fh - pt;
          if (ih < 0 || ih >= H) {
            o += FW * C;
            continue;
          }
          int64_t iw0 = ow * SW - pl;
          if (iw0 >= 0 && iw0 + FW <= W) {
            float *t = dx + ((n * H + ih) * W + iw0) * C;
            for (int64_t j = 0; j < FW * C; j++) t[j] += o[j];
            o += FW * C;
            continue;
          }
          for (int64_t fw = 0; fw < FW; fw++) {
            int64_t iw = iw0 + fw;
            if (iw >= 0 && iw < W) {
              float *t = dx + ((n * H + ih) * W + iw) * C;
              for (int64_t c = 0; c < C; c++) t[c] += o[c];
            }
            o += C;
          }
        }
}

/* Run share(ctx, t, T) for t = 0 … T−1: t = 0 on the caller's thread, the others on a pool of
 * workers started once. A worker spins for up to 100 µs after its share (a training step runs its
 * GEMMs back to back, and a wake-up through the kernel costs as much as a small GEMM), then sleeps
 * on a condition variable. Without a pool (its threads could not be started) the caller runs every
 * share itself. */
#if defined(__x86_64__) || defined(__i386__)
#define CPU_RELAX() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define CPU_RELAX() __asm__ __volatile__("yield")
#else
#define CPU_RELAX() ((void)0)
#endif
static pthread_mutex_t pool_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pool_go = PTHREAD_COND_INITIALIZER;
static pthread_cond_t pool_idle = PTHREAD_COND_INITIALIZER;
static long pool_gen = 0;   /* bumped (under pool_mu) for each parallel region */
static int pool_size = 0;   /* workers running */
static int pool_done = 0;   /* workers finished with the current region */
static ShareFn pool_fn;
static void *pool_ctx;
static int pool_T;

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

struct WorkerArg {
  int t;
  long gen; /* the region count when it was started: it joins the next one */
};

static void *pool_worker(void *arg) {
  int t = ((WorkerArg *)arg)->t;
  long seen = ((WorkerArg *)arg)->gen;
  free(arg);
  for (;;) {
    long g = __atomic_load_n(&pool_gen, __ATOMIC_ACQUIRE);
    for (double t0 = now_us(); g == seen && now_us() - t0 < 100;) {
      for (int i = 0; i < 64 && g == seen; i++) {
        CPU_RELAX();
        g = __atomic_load_n(&pool_gen, __ATOMIC_ACQUIRE);
      }
    }
    if (g == seen) {
      pthread_mutex_lock(&pool_mu);
      while ((g = pool_gen) == seen) pthread_cond_wait(&pool_go, &pool_mu);
      pthread_mutex_unlock(&pool_mu);
    }
    seen = g;
    if (t < pool_T) pool_fn(pool_ctx, t, pool_T);
    if (__atomic_add_fetch(&pool_done, 1, __ATOMIC_ACQ_REL) == pool_size) {
      pthread_mutex_lock(&pool_mu);
      pthread_cond_signal(&pool_idle);
      pthread_mutex_unlock(&pool_mu);
    }
  }
  return NULL;
}

static pthread_mutex_t region_mu = PTHREAD_MUTEX_INITIALIZER; /* one region at a time per process */

static void parallel(ShareFn fn, void *ctx, int T) {
  if (T > 16) T = 16;
  if (T < 1) T = 1;
  /* a second JavaScript thread using the addon meanwhile (worker_threads) runs its shares itself */
  if (T == 1 || pthread_mutex_trylock(&region_mu) != 0) {
    for (int t = 0; t < T; t++) fn(ctx, t, T);
    return;
  }
  while (pool_size < T - 1) { /* grow the pool (only ever between regions) */
    pthread_t th;
    WorkerArg *wa = (WorkerArg *)malloc(sizeof(WorkerArg));
    if (!wa) break;
    wa->t = pool_size + 1;
    wa->gen = __atomic_load_n(&pool_gen, __ATOMIC_ACQUIRE);
    if (pthread_create(&th, NULL, pool_worker, wa) != 0) {
      free(wa);
      break;
    }
    pthread_detach(th);
    pool_size++;
  }
  if (pool_size == 0) {
    for (int t = 0; t < T; t++) fn(ctx, t, T);
    pthread_mutex_unlock(&region_mu);
    return;
  }
  int run = T <= pool_size + 1 ? T : pool_size + 1; /* shares the pool can take; the rest run here */
  pthread_mutex_lock(&pool_mu);
  pool_fn = fn;
  pool_ctx = ctx;
  pool_T = T;
  __atomic_store_n(&pool_done, 0, __ATOMIC_RELAXED);
  __atomic_add_fetch(&pool_gen, 1, __ATOMIC_RELEASE);
  pthread_cond_broadcast(&pool_go);
  pthread_mutex_unlock(&pool_mu);
  fn(ctx, 0, T);
  for (int t = run; t < T; t++) fn(ctx, t, T);
  for (double t0 = now_us(); __atomic_load_n(&pool_done, __ATOMIC_ACQUIRE) < pool_size && now_us() - t0 < 100;)
    CPU_RELAX();
  pthread_mutex_lock(&pool_mu);
  while (__atomic_load_n(&pool_done, __ATOMIC_ACQUIRE) < pool_size) pthread_cond_wait(&pool_idle, &pool_mu);
  pthread_mutex_unlock(&pool_mu);
  pthread_mutex_unlock(&region_mu);
}

/* A convolution over chunks of `step` examples (chunk c = examples c·step …), chunk c on thread c mod T,
 * each thread with its own patch buffer: a chunk's patches are written and multiplied while they are
 * still in cache, and the chunks — hence every GEMM's shape — do not depend on the thread count
 * (OpenBLAS takes a different path for small products, so a different split would change the last
 * bits). OpenBLAS's own threading split these skinny GEMMs badly: a first MNIST convolution,
 * [147k, 25] · [25, 20], took 4.0 ms on two threads against 2.4 ms on one; its filter gradient
 * ([25, 20] from 36,864 patches) twice as long as on one. */
struct ConvCtx {
  const float *x, *w, *bias, *dy;
  float *out; /* forward: the output; filter gradient: one [K, CO] partial per chunk; input gradient: dx */
  int64_t N, H, W, C, FH, FW, SH, SW, pt, pl, OH, OW, CO, K, pix, step, nchunks;
  int act, failed;
  void (*chunk)(ConvCtx *g, int64_t c, int64_t n0, int64_t nn, float *buf);
};

static void conv_share(void *p, int t, int T) {
  ConvCtx *g = (ConvCtx *)p;
  float *buf = (float *)malloc(sizeof(float) * (size_t)(g->step * g->pix * g->K));
  if (!buf) {
    g->failed = 1;
    return;
  }
  for (int64_t c = t; c < g->nchunks; c += T) {
    int64_t n0 = c * g->step;
    g->chunk(g, c, n0, g->N - n0 < g->step ? g->N - n0 : g->step, buf);
  }
  free(buf);
}

static void im2col_chunk(ConvCtx *g, int64_t n0, int64_t nn, float *col) {
  im2col_rows(g->x + n0 * g->H * g->W * g->C, col, nn, g->H, g->W, g->C, g->FH, g->FW, g->SH, g->SW, g->pt, g->pl, g->OH,
              g->OW);
}

/* forward: out_c = act(col_c · w + bias) */
static void forward_chunk(ConvCtx *g, int64_t c, int64_t n0, int64_t nn, float *col) {
  (void)c;
  float *o = g->out + n0 * g->pix * g->CO;
  im2col_chunk(g, n0, nn, col);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)(nn * g->pix), (int)g->CO, (int)g->K, 1.0f, col, (int)g->K,
              g->w, (int)g->CO, 0.0f, o, (int)g->CO);
  if (g->bias || g->act) bias_act_rows(o, g->bias, nn * g->pix, g->CO, g->act);
}

/* filter: partial_c = col_cᵀ · dy_c, summed in chunk order afterwards */
static void filter_chunk(ConvCtx *g, int64_t c, int64_t n0, int64_t nn, float *col) {
  im2col_chunk(g, n0, nn, col);
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)g->K, (int)g->CO, (int)(nn * g->pix), 1.0f, col, (int)g->K,
              g->dy + n0 * g->pix * g->CO, (int)g->CO, 0.0f, g->out + c * g->K * g->CO, (int)g->CO);
}

/* input: dcol_c = dy_c · wᵀ, then col2im into the chunk's examples of dx */
static void input_chunk(ConvCtx *g, int64_t c, int64_t n0, int64_t nn, float *dcol) {
  (void)c;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)(nn * g->pix), (int)g->K, (int)g->CO, 1.0f,
              g->dy + n0 * g->pix * g->CO, (int)g->CO, g->w, (int)g->CO, 0.0f, dcol, (int)g->K);
  col2im_rows(dcol, g->out + n0 * g->H * g->W * g->C, nn, g->H, g->W, g->C, g->FH, g->FW, g->SH, g->SW, g->pt, g->pl,
              g->OH, g->OW);
}

/* The shape arguments N, H, W, C, FH, FW, SH, SW, padT, padL, OH, OW, CO from argv[at …] and the chunk
 * size from argv[chunk_at]; 0 when they describe no convolution. */
static int conv_args(napi_env env, napi_value *argv, int at, int chunk_at, ConvCtx *g) {
  int64_t d[13];
  for (int i = 0; i < 13; i++) d[i] = iarg(env, argv[at + i]);
  memset(g, 0, sizeof(*g));
  g->N = d[0], g->H = d[1], g->W = d[2], g->C = d[3], g->FH = d[4], g->FW = d[5], g->SH = d[6], g->SW = d[7];
  g->pt = d[8], g->pl = d[9], g->OH = d[10], g->OW = d[11], g->CO = d[12];
  g->K = g->FH * g->FW * g->C;
  g->pix = g->OH * g->OW;
  if (g->N < 0 || g->H <= 0 || g->W <= 0 || g->K <= 0 || g->pix <= 0 || g->CO <= 0) return 0;
  g->step = iarg(env, argv[chunk_at]) / (g->pix * g->K);
  if (g->step < 1) g->step = 1;
  g->nchunks = (g->N + g->step - 1) / g->step;
  return 1;
}

/* the chunks on up to g_threads threads; 0 when a patch buffer could not be had */
static int conv_run(ConvCtx *g) {
  int T = g_threads < g->nchunks ? g_threads : (int)g->nchunks;
  parallel(conv_share, g, T < 1 ? 1 : T);
  return !g->failed;
}

/* convForward(x, w, bias, out, N, H, W, C, FH, FW, SH, SW, padT, padL, OH, OW, CO, act, chunkFloats):
 * out [N, OH, OW, CO] = act(im2col(x) · w + bias), NHWC, w [FH·FW·C, CO]; bias may be empty. */
static napi_value conv_forward(napi_env env, napi_callback_info info) {
  size_t argc = 19;
  napi_value argv[19];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  F32(0, x);
  F32(1, w);
  F32(2, bias);
  F32(3, out);
  ConvCtx g;
  if (!conv_args(env, argv, 4, 18, &g) || (size_t)(g.N * g.H * g.W * g.C) > x_len || (size_t)(g.K * g.CO) > w_len ||
      (size_t)(g.N * g.pix * g.CO) > out_len) {
    napi_throw_range_error(env, NULL, "mse_blas.convForward: buffer smaller than its shape");
    return NULL;
  }
  g.x = x;
  g.w = w;
  g.bias = bias_len >= (size_t)g.CO ? bias : NULL;
  g.out = out;
  g.act = (int)iarg(env, argv[17]);
  g.chunk = forward_chunk;
  if (g.N > 0 && !conv_run(&g)) napi_throw_error(env, NULL, "mse_blas.convForward: out of memory for the patch buffer");
  return NULL;
}

/* convBackpropFilter(x, dy, dw, N, H, W, C, FH, FW, SH, SW, padT, padL, OH, OW, CO, chunkFloats):
 * dw = Σ over chunks of im2col(x)ᵀ · dy, one partial per chunk summed in chunk order, so that the
 * result does not depend on the thread count. */
static napi_value conv_backprop_filter(napi_env env, napi_callback_info info) {
  size_t argc = 17;
  napi_value argv[17];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  F32(0, x);
  F32(1, dy);
  F32(2, dw);
  ConvCtx g;
  if (!conv_args(env, argv, 3, 16, &g) || (size_t)(g.N * g.H * g.W * g.C) > x_len ||
      (size_t)(g.N * g.pix * g.CO) > dy_len || (size_t)(g.K * g.CO) > dw_len) {
    napi_throw_range_error(env, NULL, "mse_blas.convBackpropFilter: buffer smaller than its shape");
    return NULL;
  }
  const int64_t KC = g.K * g.CO;
  memset(dw, 0, sizeof(float) * (size_t)KC);
  if (g.N == 0) return NULL;
  g.x = x;
  g.dy = dy;
  g.out = (float *)malloc(sizeof(float) * (size_t)(g.nchunks * KC));
  g.chunk = filter_chunk;
  if (!g.out || !conv_run(&g)) {
    free(g.out);
    napi_throw_error(env, NULL, "mse_blas.convBackpropFilter: out of memory for the partial gradients");
    return NULL;
  }
  for (int64_t c = 0; c < g.nchunks; c++) {
    const float *p = g.out + c * KC;
    for (int64_t i = 0; i < KC; i++) dw[i] += p[i];
  }
  free(g.out);
  return NULL;
}

/* convBackpropInput(dy, w, dx, …the same shape arguments, chunkFloats): dx = col2im(dy · wᵀ), by chunks of examples. */
static napi_value conv_backprop_input(napi_env env, napi_callback_info info) {
  size_t argc = 17;
  napi_value argv[17];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  F32(0, dy);
  F32(1, w);
  F32(2, dx);
  ConvCtx g;
  if (!conv_args(env, argv, 3, 16, &g) || (size_t)(g.N * g.pix * g.CO) > dy_len || (size_t)(g.K * g.CO) > w_len ||
      (size_t)(g.N * g.H * g.W * g.C) > dx_len) {
    napi_throw_range_error(env, NULL, "mse_blas.convBackpropInput: buffer smaller than its shape");
    return NULL;
  }
  g.dy = dy;
  g.w = w;
  g.out = dx;
  g.chunk = input_chunk;
  if (g.N > 0 && !conv_run(&g))
    napi_throw_error(env, NULL, "mse_blas.convBackpropInput: out of memory for the patch buffer");
  return NULL;
}

/* The optimiser loops, on restrict pointers (tfjs hands each output a fresh buffer) so that they
 * vectorise; sqrtf too, with binding.gyp's -fno-math-errno. */
static void momentum_loop(const float *__restrict w, const float *__restrict vel, const float *__restrict g,
                          float *__restrict ow, float *__restrict ov, size_t n, float lr, float mu) {
  for (size_t i = 0; i < n; i++) {
    float v = mu * vel[i] + g[i];
    ov[i] = v;
    ow[i] = w[i] - lr * v;
  }
}

static void adam_loop(const float *__restrict w, const float *__restrict m, const float *__restrict v,
                      const float *__restrict g, float *__restrict ow, float *__restrict om, float *__restrict ov,
                      size_t n, float lr, float b1, float b2, float eps, float c1, float c2) {
  for (size_t i = 0; i < n; i++) {
    float gi = g[i];
    float mi = b1 * m[i] + (1.0f - b1) * gi;
    float vi = b2 * v[i] + (1.0f - b2) * gi * gi;
    om[i] = mi;
    ov[i] = vi;
    ow[i] = w[i] - lr * (mi * c1) / (sqrtf(vi * c2) + eps);
  }
}

/* momentum(w, vel, g, outW, outVel, lr, mu): outVel = mu·vel + g; outW = w − lr·outVel (tf.train.momentum). */
static napi_value momentum(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  F32(0, w);
  F32(1, vel);
  F32(2, g);
  F32(3, ow);
  F32(4, ov);
  double lr, mu;
  napi_get_value_double(env, argv[5], &lr);
  napi_get_value_double(env, argv[6], &mu);
  size_t n = w_len;
  if (vel_len != n || g_len != n || ow_len != n || ov_len != n) {
    napi_throw_range_error(env, NULL, "mse_blas.momentum: length mismatch");
    return NULL;
  }
  momentum_loop(w, vel, g, ow, ov, n, (float)lr, (float)mu);
  return NULL;
}

/* adam(w, m, v, g, outW, outM, outV, lr, b1, b2, eps, b1t, b2t): tf.train.adam's update, with
 * b1t = β1^t and b2t = β2^t for this step. */
static napi_value adam(napi_env env, napi_callback_info info) {
  size_t argc = 13;
  napi_value argv[13];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  F32(0, w);
  F32(1, m);
  F32(2, v);
  F32(3, g);
  F32(4, ow);
  F32(5, om);
  F32(6, ov);
  double lr, b1, b2, eps, b1t, b2t;
  napi_get_value_double(env, argv[7], &lr);
  napi_get_value_double(env, argv[8], &b1);
  napi_get_value_double(env, argv[9], &b2);
  napi_get_value_double(env, argv[10], &eps);
  napi_get_value_double(env, argv[11], &b1t);
  napi_get_value_double(env, argv[12], &b2t);
  size_t n = w_len;
  if (m_len != n || v_len != n || g_len != n || ow_len != n || om_len != n || ov_len != n) {
    napi_throw_range_error(env, NULL, "mse_blas.adam: length mismatch");
    return NULL;
  }
  adam_loop(w, m, v, g, ow, om, ov, n, (float)lr, (float)b1, (float)b2, (float)eps, (float)(1.0 / (1.0 - b1t)),
            (float)(1.0 / (1.0 - b2t)));
  return NULL;
}

/* actBiasGrad(dy, y, dz, db, rows, cols, relu): the backward pass of y = act(z + b) over [rows, cols]:
 * dz = dy ⊙ 1[y > 0] (relu) or dy (linear), and db[j] = Σ_r dz[r, j], in one pass (tfjs would run
 * Step, Multiply, and a Sum that first transposes the reduced axes inward). */
static napi_value act_bias_grad(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 7) {
    napi_throw_error(env, NULL, "mse_blas.actBiasGrad: 7 arguments expected");
    return NULL;
  }
  F32(0, dy);
  F32(1, y);
  F32(2, dz);
  F32(3, db);
  int64_t rows = iarg(env, argv[4]), cols = iarg(env, argv[5]), relu = iarg(env, argv[6]);
  size_t n = (size_t)(rows * cols);
  if (rows < 0 || cols < 0 || n > dy_len || n > dz_len || (relu && n > y_len) || (size_t)cols > db_len) {
    napi_throw_range_error(env, NULL, "mse_blas.actBiasGrad: buffer smaller than its shape");
    return NULL;
  }
  // a product with the comparison, on restrict pointers, which the compiler vectorises (with
  // binding.gyp's -fno-trapping-math): a branch on the sign of y mispredicts half the time, 3 ms
  // instead of 0.3 ms on the LeNet's first layer
  float *__restrict sum = db;
  memset(sum, 0, sizeof(float) * cols);
  for (int64_t r = 0; r < rows; r++) {
    const float *__restrict g = dy + r * cols;
    float *__restrict o = dz + r * cols;
    if (relu) {
      const float *__restrict a = y + r * cols;
      for (int64_t j = 0; j < cols; j++) o[j] = g[j] * (float)(a[j] > 0.0f); // = dy · step(y), as tfjs
    } else {
      memcpy(o, g, sizeof(float) * cols);
    }
    for (int64_t j = 0; j < cols; j++) sum[j] += o[j];
  }
  return NULL;
}

/* One 2×2 window of maxPoolGrad2 over C channels: all four cells written, each with the gradient
 * times "this is the window's first maximum" (it beats every earlier cell and ties or beats every
 * later one). Branch-free (& not &&), so vectorised over channels: the data-dependent branches
 * mispredict and took 4–6× as long. */
static void pool_grad_window(const float *__restrict x0, const float *__restrict x1, const float *__restrict x2,
                             const float *__restrict x3, const float *__restrict g, float *__restrict d0,
                             float *__restrict d1, float *__restrict d2, float *__restrict d3, int64_t C) {
  for (int64_t c = 0; c < C; c++) {
    const float a = x0[c], b = x1[c], e = x2[c], f = x3[c], v = g[c];
    d0[c] = v * (float)((a >= b) & (a >= e) & (a >= f));
    d1[c] = v * (float)((b > a) & (b >= e) & (b >= f));
    d2[c] = v * (float)((e > a) & (e > b) & (e >= f));
    d3[c] = v * (float)((f > a) & (f > b) & (f > e));
  }
}

/* maxPoolGrad2(x, dy, dx, N, H, W, C, OH, OW): MaxPoolGrad for 2×2 windows, stride 2, no padding
 * (the LeNet case; windows do not overlap). Each dy value goes to the first maximum of its window,
 * scanning rows then columns — the cpu backend's tie rule; dx is zero elsewhere. NHWC. */
static napi_value max_pool_grad2(napi_env env, napi_callback_info info) {
  size_t argc = 9;
  napi_value argv[9];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 9) {
    napi_throw_error(env, NULL, "mse_blas.maxPoolGrad2: 9 arguments expected");
    return NULL;
  }
  F32(0, x);
  F32(1, dy);
  F32(2, dx);
  int64_t N = iarg(env, argv[3]), H = iarg(env, argv[4]), W = iarg(env, argv[5]), C = iarg(env, argv[6]);
  int64_t OH = iarg(env, argv[7]), OW = iarg(env, argv[8]);
  if (N < 0 || C < 0 || 2 * OH > H || 2 * OW > W || (size_t)(N * H * W * C) > x_len ||
      (size_t)(N * H * W * C) > dx_len || (size_t)(N * OH * OW * C) > dy_len) {
    napi_throw_range_error(env, NULL, "mse_blas.maxPoolGrad2: buffer smaller than its shape");
    return NULL;
  }
  // the windows tile dx except an odd last row or column, which gets no gradient
  if (2 * OH != H || 2 * OW != W) memset(dx, 0, sizeof(float) * N * H * W * C);
  const int64_t row = W * C;
  for (int64_t n = 0; n < N; n++)
    for (int64_t oh = 0; oh < OH; oh++)
      for (int64_t ow = 0; ow < OW; ow++) {
        const int64_t b0 = ((n * H + 2 * oh) * W + 2 * ow) * C;
        const float *g = dy + ((n * OH + oh) * OW + ow) * C;
        pool_grad_window(x + b0, x + b0 + C, x + b0 + row, x + b0 + row + C, g, dx + b0, dx + b0 + C, dx + b0 + row,
                         dx + b0 + row + C, C);
      }
  return NULL;
}

/* maxPool2(x, out, N, H, W, C, OH, OW): the 2×2 stride-2 valid max pool, NHWC, channel-innermost
 * (tfjs-wasm's MaxPool was a fifth of the MNIST CNN's forward pass once its convolutions ran here). */
static void pool_window(const float *__restrict x0, const float *__restrict x1, const float *__restrict x2,
                        const float *__restrict x3, float *__restrict o, int64_t C) {
  for (int64_t c = 0; c < C; c++) {
    float m = x0[c];
    m = x1[c] > m ? x1[c] : m;
    m = x2[c] > m ? x2[c] : m;
    o[c] = x3[c] > m ? x3[c] : m;
  }
}

static napi_value max_pool2(napi_env env, napi_callback_info info) {
  size_t argc = 8;
  napi_value argv[8];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 8) {
    napi_throw_error(env, NULL, "mse_blas.maxPool2: 8 arguments expected");
    return NULL;
  }
  F32(0, x);
  F32(1, out);
  int64_t N = iarg(env, argv[2]), H = iarg(env, argv[3]), W = iarg(env, argv[4]), C = iarg(env, argv[5]);
  int64_t OH = iarg(env, argv[6]), OW = iarg(env, argv[7]);
  if (N < 0 || C < 0 || OH < 0 || OW < 0 || 2 * OH > H || 2 * OW > W || (size_t)(N * H * W * C) > x_len ||
      (size_t)(N * OH * OW * C) > out_len) {
    napi_throw_range_error(env, NULL, "mse_blas.maxPool2: buffer smaller than its shape");
    return NULL;
  }
  const int64_t row = W * C;
  for (int64_t n = 0; n < N; n++)
    for (int64_t oh = 0; oh < OH; oh++)
      for (int64_t ow = 0; ow < OW; ow++) {
        const float *b = x + ((n * H + 2 * oh) * W + 2 * ow) * C;
        pool_window(b, b + C, b + row, b + row + C, out + ((n * OH + oh) * OW + ow) * C, C);
      }
  return NULL;
}

/* madArgmax(y, p, best, n, k): MAD-argmax's oracle for n rows of K ≤ 16 classes (Orekondy 2020, eq. 5
 * in closed form; the same arithmetic, in the same order, as argmaxOracle in src/defenses/mad.ts).
 * y: the victim's posteriors, p: the defender's surrogate's. For the top-1 class t of y and the unit
 * direction u = (p − y)/‖p − y‖, candidate S ∋ t (bits over the other classes, in order) puts
 * (1 + 1e-5·[j = t])/D on S, D = |S| + 1e-5, and scores 2 − 2·(p − c)·u/‖p − c‖, from Σ_S u and Σ_S p
 * grown by subset sums. best[i] = the first candidate of highest score. */
static napi_value mad_argmax(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  F32(0, y);
  F32(1, p);
  int32_t *best;
  size_t best_len;
  {
    napi_typedarray_type t;
    void *d;
    napi_value ab;
    size_t off;
    if (napi_get_typedarray_info(env, argv[2], &t, &best_len, &d, &ab, &off) != napi_ok || t != napi_int32_array) {
      napi_throw_type_error(env, NULL, "mse_blas: argument 2 must be an Int32Array");
      return NULL;
    }
    best = (int32_t *)d;
  }
  int64_t n = iarg(env, argv[3]), k = iarg(env, argv[4]);
  if (n < 0 || k < 2 || k > 16 || (size_t)(n * k) > y_len || (size_t)(n * k) > p_len || (size_t)n > best_len) {
    napi_throw_range_error(env, NULL, "mse_blas.madArgmax: buffer smaller than its shape, or K outside 2…16");
    return NULL;
  }
  const int64_t count = (int64_t)1 << (k - 1);
  double *SU = (double *)malloc(sizeof(double) * (size_t)count * 2);
  int32_t *SZ = (int32_t *)malloc(sizeof(int32_t) * (size_t)count);
  if (!SU || !SZ) {
    free(SU);
    free(SZ);
    napi_throw_error(env, NULL, "mse_blas.madArgmax: out of memory");
    return NULL;
  }
  double *SP = SU + count;
  double inv[17], ccm[17];
  for (int64_t m = 1; m <= k; m++) {
    inv[m] = 1 / (m + 1e-5);
    ccm[m] = (m - 1 + (1 + 1e-5) * (1 + 1e-5)) * inv[m] * inv[m];
  }
  for (int64_t i = 0; i < n; i++) {
    const float *yr = y + i * k, *pr = p + i * k;
    int64_t top = 0;
    for (int64_t j = 1; j < k; j++)
      if (yr[j] > yr[top]) top = j;
    double u[16], ou[16], op[16];
    double nrm = 0;
    for (int64_t j = 0; j < k; j++) {
      u[j] = (double)pr[j] - (double)yr[j];
      nrm += u[j] * u[j];
    }
    nrm = sqrt(nrm);
    if (!(nrm != 0)) nrm = 1e-12; /* 0 or NaN, as JavaScript's `|| 1e-12` */
    for (int64_t j = 0; j < k; j++) u[j] /= nrm;
    double pu = 0, pp = 0;
    for (int64_t j = 0, b = 0; j < k; j++) {
      pu += (double)pr[j] * u[j];
      pp += (double)pr[j] * (double)pr[j];
      if (j != top) {
        ou[b] = u[j];
        op[b++] = pr[j];
      }
    }
    SU[0] = u[top];
    SP[0] = pr[top];
    SZ[0] = 1;
    const double eu = 1e-5 * u[top], ep = 1e-5 * (double)pr[top];
    int64_t bi = 0;
    double bestObj = -INFINITY;
    for (int64_t bits = 0; bits < count; bits++) {
      if (bits > 0) {
        int64_t rest = bits & (bits - 1);
        int b = __builtin_ctzll((unsigned long long)bits);
        SU[bits] = SU[rest] + ou[b];
        SP[bits] = SP[rest] + op[b];
        SZ[bits] = SZ[rest] + 1;
      }
      int32_t m = SZ[bits];
      double cu = (SU[bits] + eu) * inv[m], cp = (SP[bits] + ep) * inv[m];
      double d2 = pp - 2 * cp + ccm[m];
      double nc = sqrt(d2 > 0 ? d2 : 0);
      if (!(nc != 0)) nc = 1e-12;
      double o = 2 - (2 * (pu - cu)) / nc;
      if (o > bestObj) {
        bestObj = o;
        bi = bits;
      }
    }
    best[i] = (int32_t)bi;
  }
  free(SU);
  free(SZ);
  return NULL;
}

static napi_value set_threads(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int64_t t = iarg(env, argv[0]);
  g_threads = t < 1 ? 1 : t > 16 ? 16 : (int)t;
  openblas_set_num_threads(1);
  napi_value out;
  CHECK(napi_create_int32(env, g_threads, &out));
  return out;
}

static napi_value config(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value out;
  CHECK(napi_create_string_utf8(env, openblas_get_config(), NAPI_AUTO_LENGTH, &out));
  return out;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"sgemm", NULL, sgemm, NULL, NULL, NULL, napi_default, NULL},
      {"biasAct", NULL, bias_act, NULL, NULL, NULL, napi_default, NULL},
      {"convForward", NULL, conv_forward, NULL, NULL, NULL, napi_default, NULL},
      {"convBackpropFilter", NULL, conv_backprop_filter, NULL, NULL, NULL, napi_default, NULL},
      {"convBackpropInput", NULL, conv_backprop_input, NULL, NULL, NULL, napi_default, NULL},
      {"momentum", NULL, momentum, NULL, NULL, NULL, napi_default, NULL},
      {"adam", NULL, adam, NULL, NULL, NULL, napi_default, NULL},
      {"actBiasGrad", NULL, act_bias_grad, NULL, NULL, NULL, napi_default, NULL},
      {"maxPoolGrad2", NULL, max_pool_grad2, NULL, NULL, NULL, napi_default, NULL},
      {"maxPool2", NULL, max_pool2, NULL, NULL, NULL, napi_default, NULL},
      {"madArgmax", NULL, mad_argmax, NULL, NULL, NULL, napi_default, NULL},
      {"setThreads", NULL, set_threads, NULL, NULL, NULL, napi_default, NULL},
      {"config", NULL, config, NULL, NULL, NULL, napi_default, NULL},
  };
  if (napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props) != napi_ok) return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
