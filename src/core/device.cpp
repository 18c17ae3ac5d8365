#include "crepe/core/device.hpp"

#include <ATen/Context.h>
#include <c10/core/DeviceGuard.h>
#include <dlfcn.h>
#include <torch/cuda.h>

#include "crepe/core/error.hpp"
#include "crepe/core/host_memory.hpp"

namespace crepe {

c10::Device parse_device(const std::string& text, const std::string& option) {
  if (text == "cpu") return c10::Device(c10::kCPU);
  if (text.rfind("cuda", 0) == 0) {
    int index = 0;
    if (text.size() > 4) {
      require(text[4] == ':' && text.size() > 5, option, "invalid device '" + text + "' (expected cpu, cuda or cuda:N)");
      try {
        size_t used = 0;
        index = std::stoi(text.substr(5), &used);
        require(used == text.size() - 5 && index >= 0, option, "invalid device index in '" + text + "'");
      } catch (const std::logic_error&) {
        throw_input_error(option, "invalid device index in '" + text + "'");
      }
    }
    require(at::hasCUDA(), option, "'" + text + "' requested but this build of LibTorch has no CUDA device available");
    const auto count = static_cast<int>(torch::cuda::device_count());
    require(index < count, option,
            "'" + text + "' requested but there is no CUDA device " + std::to_string(index) + " (this machine has " +
                std::to_string(count) + ")");
    return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(index));
  }
  throw_input_error(option, "invalid device '" + text + "' (expected cpu, cuda or cuda:N)");
}

c10::ScalarType parse_dtype(const std::string& text, const std::string& option) {
  if (text == "fp32" || text == "float32") return c10::kFloat;
  if (text == "bf16" || text == "bfloat16") return c10::kBFloat16;
  if (text == "fp16" || text == "float16") return c10::kHalf;
  throw_input_error(option, "invalid dtype '" + text + "' (expected fp32, bf16 or fp16)");
}

Placement make_placement(const std::string& device, const std::string& dtype) {
  Placement placement;
  placement.device = parse_device(device);
  placement.compute_dtype = parse_dtype(dtype);
  // LibTorch's CPU bf16/fp16 matmuls are ~30x slower than fp32 and gain nothing in accuracy.
  require(placement.device.is_cuda() || placement.compute_dtype == c10::kFloat, "--dtype",
          dtype + " compute is only offered on CUDA; on CPU crepe computes in fp32");
  return placement;
}

void synchronize(c10::Device device) {
  if (device.is_cuda()) torch::cuda::synchronize(device.index());
}

std::optional<int64_t> free_memory(c10::Device device) {
  if (device.is_cpu()) return available_host_memory();
  if (!device.is_cuda()) return std::nullopt;
  // cudaError_t cudaMemGetInfo(size_t* free, size_t* total), for the current device; 0 is success.
  using MemGetInfo = int (*)(size_t*, size_t*);
  static const auto mem_get_info = reinterpret_cast<MemGetInfo>(dlsym(RTLD_DEFAULT, "cudaMemGetInfo"));
  if (mem_get_info == nullptr) return std::nullopt;
  const c10::DeviceGuard current(device);
  size_t free = 0, total = 0;
  if (mem_get_info(&free, &total) != 0) return std::nullopt;
  return static_cast<int64_t>(free);
}

std::string non_finite_cause(c10::ScalarType compute_dtype) {
  return compute_dtype == c10::kHalf ? "fp16's range is too small for this model's activations; use --dtype bf16 or fp32"
                                     : "the weights hold NaN or Inf (--check-finite names the tensor)";
}

bool holds_exactly(c10::ScalarType wide, c10::ScalarType narrow) {
  if (wide == narrow) return true;
  const bool narrow_is_half = narrow == c10::kBFloat16 || narrow == c10::kHalf;
  return (wide == c10::kFloat && narrow_is_half) || (wide == c10::kDouble && (narrow_is_half || narrow == c10::kFloat));
}

std::string dtype_name(c10::ScalarType dtype) {
  switch (dtype) {
    case c10::kFloat: return "fp32";
    case c10::kBFloat16: return "bf16";
    case c10::kHalf: return "fp16";
    case c10::kDouble: return "fp64";
    default: return c10::toString(dtype);
  }
}

}  // namespace crepe
