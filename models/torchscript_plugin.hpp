// The interface between the TorchScript score backend (models/torchscript_score.cpp, in the library) and the
// plugin that runs LibTorch (models/torchscript_plugin.cpp, the shared module libscoresde_torch.so). LibTorch takes
// about a second to load (hundreds of shared libraries and its operator registry), so programs do not link it: the
// plugin is loaded with dlopen when the first .pt is opened. Nothing here includes LibTorch, and nothing crosses the
// boundary but plain arrays, strings and this class: errors come back as messages, never as exceptions.
//
// Arrays: a batch of n points of dimension d is an (n, d) row-major array, i.e. a d x n column-major matrix (C
// order: a point of shape (C, H, W) is its C H W values with W varying fastest); x, v, out and jv may have an
// outer stride (ldx, ldv, ldo, ldj >= d) and t a stride; div is contiguous. Each call copies its inputs once into
// one tensor of the module's type (converting from double) and its outputs once back (converting to double).
#pragma once

#include <string>

namespace scoresde::torch_plugin {

class Module {
 public:
  virtual ~Module() = default;
  // The module's floating type: float64, or float32 (the type of its first floating parameter; float32 without).
  virtual bool float64() const = 0;
  // The shape of one point as the module takes it, e.g. (C, H, W) with C H W = d: forward receives (n, C, H, W)
  // and must return that shape. Without it (rank 0), (n, d). Set once, before any evaluation.
  virtual void set_point_shape(long rank, const long* dims) = 0;
  // out = forward(x, t) as float64. Each returns "" or what went wrong (a wrong output shape or type, or LibTorch's
  // first line).
  virtual std::string forward(long n, long d, const double* x, long ldx, const double* t, long t_stride, double* out,
                              long ldo) const = 0;
  // out and div(j) = the trace of d out_j / d x_j (d vector-Jacobian products).
  virtual std::string divergence(long n, long d, const double* x, long ldx, const double* t, long t_stride, double* out,
                                 long ldo, double* div) const = 0;
  // out and jv_j = (d out_j / d x_j) v_j (two reverse passes).
  virtual std::string jvp(long n, long d, const double* x, long ldx, const double* t, long t_stride, const double* v,
                          long ldv, double* out, long ldo, double* jv, long ldj) const = 0;
};

// The plugin's entry point: loads the TorchScript archive at `path` with its extra file `metadata_name` (its
// contents into *metadata, empty when absent), sets LibTorch's intra-op threads to 1, and returns the module, or
// nullptr with *error set.
using LoadFn = Module* (*)(const char* path, const char* metadata_name, std::string* metadata, std::string* error);
inline constexpr const char* load_symbol = "scoresde_torch_plugin_load";

}  // namespace scoresde::torch_plugin
