// Conversions between numpy arrays and the engine's types, shared by the binding files. Every check throws
// std::invalid_argument (Python ValueError) saying what was received and what is accepted.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "engine/network_spec.h"
#include "ops/params.h"

namespace srgan_fast::bindings {

namespace py = pybind11;

// A shape as Python writes a tuple: "(3, 64, 64)", "(3,)".
inline std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + (shape.size() == 1 ? ",)" : ")");
}

inline std::string shape_of(const py::array& a) {
  return shape_string(std::vector<int64_t>(a.shape(), a.shape() + a.ndim()));
}

inline std::string dtype_name(const py::array& a) { return py::str(a.dtype()).cast<std::string>(); }

inline DType image_dtype(const py::array& a, const char* what) {
  if (py::isinstance<py::array_t<uint8_t>>(a)) return DType::u8;
  if (py::isinstance<py::array_t<uint16_t>>(a)) return DType::u16;
  if (py::isinstance<py::array_t<float>>(a)) return DType::f32;
  throw std::invalid_argument(std::string(what) + ": expected dtype uint8, uint16 or float32, got " + dtype_name(a));
}

inline py::dtype numpy_dtype(DType t) {
  switch (t) {
    case DType::u8: return py::dtype::of<uint8_t>();
    case DType::u16: return py::dtype::of<uint16_t>();
    default: return py::dtype::of<float>();
  }
}

// An [n, h, w, channels] C-contiguous array with n, h, w >= 1 (channels < 0: any).
inline void check_nhwc(const py::array& a, int channels, const char* what) {
  const std::string want = channels < 0 ? "[N, h, w, C]" : "[N, h, w, " + std::to_string(channels) + "]";
  if (a.ndim() != 4 || (channels >= 0 && a.shape(3) != channels))
    throw std::invalid_argument(std::string(what) + ": expected an NHWC array of shape " + want + ", got shape " +
                                shape_of(a));
  if (a.shape(0) < 1 || a.shape(1) < 1 || a.shape(2) < 1 || a.shape(3) < 1)
    throw std::invalid_argument(std::string(what) + ": expected N, h, w >= 1, got shape " + shape_of(a));
  if (!(a.flags() & py::array::c_style)) {
    std::string strides;
    for (py::ssize_t i = 0; i < a.ndim(); ++i) strides += (i ? ", " : "") + std::to_string(a.strides(i));
    throw std::invalid_argument(std::string(what) + ": expected a C-contiguous array (np.ascontiguousarray), got "
                                "strides (" + strides + ")");
  }
  if (a.shape(1) > (1 << 20) || a.shape(2) > (1 << 20))
    throw std::invalid_argument(std::string(what) + ": tile sides above 2^20 pixels are not supported, got shape " +
                                shape_of(a));
}

// The values of a float32 array of exactly `expected_shape` (any shape when null), copied.
inline std::vector<float> tensor_from_array(const py::handle& obj, const std::string& name,
                                            const std::vector<int64_t>* expected_shape = nullptr) {
  if (!py::isinstance<py::array>(obj))
    throw std::invalid_argument("weights tensor '" + name + "': expected a numpy float32 array, got " +
                                py::str(py::type::of(obj)).cast<std::string>());
  const py::array a = py::reinterpret_borrow<py::array>(obj);
  if (!py::isinstance<py::array_t<float>>(a))
    throw std::invalid_argument("weights tensor '" + name + "': expected dtype float32, got " + dtype_name(a));
  if (expected_shape && std::vector<int64_t>(a.shape(), a.shape() + a.ndim()) != *expected_shape)
    throw std::invalid_argument("weights tensor '" + name + "': expected shape " + shape_string(*expected_shape) +
                                ", got " + shape_of(a));
  const auto contiguous = py::array_t<float, py::array::c_style | py::array::forcecast>::ensure(a);
  return std::vector<float>(contiguous.data(), contiguous.data() + contiguous.size());
}

// The layer records of srgan_fast.backends.base.engine_layers (a list of dicts, one per layer of the
// description, each with its weight, bias and slopes arrays) -> the engines' NetworkSpec, validated.
inline NetworkSpec network_from_records(const py::list& layers, int scale, const std::string& image_skip,
                                        int image_channels = 3) {
  NetworkSpec network;
  network.scale = scale;
  network.image_channels = image_channels;
  network.image_skip = parse_image_skip(image_skip);
  for (const py::handle& item : layers) {
    if (!py::isinstance<py::dict>(item))
      throw std::invalid_argument("layers: expected dicts (engine_layers), got " +
                                  py::str(py::type::of(item)).cast<std::string>());
    const py::dict d = py::reinterpret_borrow<py::dict>(item);
    const auto field = [&](const char* key) -> py::object {
      if (!d.contains(key)) throw std::invalid_argument(std::string("layers: a layer record lacks '") + key + "'");
      return d[key];
    };
    LayerSpec l;
    l.name = field("name").cast<std::string>();
    l.in_channels = field("in_channels").cast<int>(), l.out_channels = field("out_channels").cast<int>();
    l.kernel = field("kernel").cast<int>(), l.level = field("level").cast<int>();
    l.source = field("source").cast<int>(), l.shuffle = field("shuffle").cast<int>();
    l.residual = field("residual").cast<int>();
    // The dense-block fields (engine_layers writes them all; a record without them reads one source).
    const auto optional = [&](const char* key, auto fallback) {
      return d.contains(key) ? d[key].cast<decltype(fallback)>() : fallback;
    };
    l.sources = optional("sources", std::vector<int>{l.source});
    l.upsample = optional("upsample", 1);
    l.residual_scale = optional("residual_scale", 1.f);
    l.outer_residual = optional("outer_residual", -1);
    l.outer_residual_scale = optional("outer_residual_scale", 1.f);
    const std::vector<int64_t> weight_shape{l.out_channels, l.in_channels, l.kernel, l.kernel}, bias_shape{l.out_channels};
    l.weight = tensor_from_array(field("weight"), l.name + ".weight", &weight_shape);
    l.bias = tensor_from_array(field("bias"), l.name + ".bias", &bias_shape);
    const py::object slopes = field("slopes");
    if (!slopes.is_none()) l.slopes = tensor_from_array(slopes, l.name + " slopes");
    network.layers.push_back(std::move(l));
  }
  validate_network(network);
  return network;
}

}  // namespace srgan_fast::bindings
