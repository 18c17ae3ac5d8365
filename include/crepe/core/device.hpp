#pragma once
// Where tensors live and in which precision the forward pass computes.
//
// Every kernel in crepe takes a Placement instead of assuming the CPU, so `--device cuda` runs the
// same code. Statistics are always accumulated in float32, whatever the compute dtype.
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <cstdint>
#include <optional>
#include <string>

namespace crepe {

struct Placement {
  c10::Device device = c10::Device(c10::kCPU);
  c10::ScalarType compute_dtype = c10::kFloat;  // forward-pass dtype (fp32 on CPU)
};

// "cpu", "cuda", "cuda:1". Throws InputError naming `option` when invalid or unavailable.
c10::Device parse_device(const std::string& text, const std::string& option = "--device");

// "fp32"/"float32", "bf16"/"bfloat16", "fp16"/"float16". Throws InputError naming `option`.
c10::ScalarType parse_dtype(const std::string& text, const std::string& option = "--dtype");

// Checks a device/dtype combination is usable (bf16/fp16 compute is offered on CUDA only).
Placement make_placement(const std::string& device, const std::string& dtype);

std::string dtype_name(c10::ScalarType dtype);

// Why activations computed in `compute_dtype` would hold NaN or Inf, for error messages: fp16's
// range (with the remedy), or else non-finite weights (and the option that names them).
std::string non_finite_cause(c10::ScalarType compute_dtype);

// Whether every value of `narrow` is also a value of `wide`: float32 holds bf16 and fp16 exactly,
// but bf16 and fp16 hold only themselves (each rounds the other's mantissa or range).
bool holds_exactly(c10::ScalarType wide, c10::ScalarType narrow);

// Waits until the device has finished the work queued on it (CUDA runs kernels asynchronously);
// nothing to wait for on the CPU. Timers call it before reading the clock, so that they measure the
// work rather than its launch.
void synchronize(c10::Device device);

// Bytes `device` could allocate now: host memory available for the CPU (available_host_memory), the
// driver's free memory for CUDA (memory LibTorch's allocator caches but does not use is not
// counted); nullopt where unknown. CUDA is asked through the CUDA runtime that a CUDA LibTorch
// loads, looked up at run time, so that the same source builds against a CPU-only LibTorch.
std::optional<int64_t> free_memory(c10::Device device);

}  // namespace crepe
