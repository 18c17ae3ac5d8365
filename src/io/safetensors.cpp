// The dtype vocabulary shared by the safetensors reader (safetensors_read.cpp) and writer
// (safetensors_write.cpp).
#include "crepe/io/safetensors.hpp"

#include <stdexcept>

#include "crepe/core/error.hpp"

namespace crepe::io {

std::string dtype_to_string(DType dtype) {
  switch (dtype) {
    case DType::F32: return "F32";
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
  }
  throw std::logic_error("dtype_to_string: invalid DType value");
}

size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::F32: return 4;
    case DType::F16: return 2;
    case DType::BF16: return 2;
  }
  throw std::logic_error("dtype_size: invalid DType value");
}

c10::ScalarType to_scalar_type(DType dtype) {
  switch (dtype) {
    case DType::F32: return c10::kFloat;
    case DType::F16: return c10::kHalf;
    case DType::BF16: return c10::kBFloat16;
  }
  throw std::logic_error("to_scalar_type: invalid DType value");
}

DType from_scalar_type(c10::ScalarType type) {
  switch (type) {
    case c10::kFloat: return DType::F32;
    case c10::kHalf: return DType::F16;
    case c10::kBFloat16: return DType::BF16;
    default: break;
  }
  throw_input_error("safetensors", std::string("tensors of dtype ") + c10::toString(type) +
                                       " cannot be stored; crepe writes F32, F16, BF16");
}

int64_t TensorInfo::numel() const {
  // A scalar (shape []) has one element: the empty product.
  int64_t count = 1;
  for (int64_t dim : shape) count *= dim;
  return count;
}

}  // namespace crepe::io
