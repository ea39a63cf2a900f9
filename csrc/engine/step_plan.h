// The plan both engines walk: a network description's layers as steps (which maps each reads and writes), and
// the buffers those maps live in. Plain data, made once per network. Each engine chooses its steps' kinds and
// storage (the CPU engine: engine_plan.cpp; the CUDA engine: plan_cuda_steps below); place_concatenations and
// assign_buffers then lay the maps out the same way for both: a map is freed after its last reader and its
// buffer reused by a later map of the same shape, a residual add may write in place over a skip nothing reads
// later, and a dense block's inputs are channel ranges of one buffer.
#pragma once

#include <string>
#include <vector>

#include "engine/network_spec.h"

namespace srgan_fast {

// head: a conv reading the image; conv / conv_int8: map to map (conv_int8 reads its source's codes); quantize:
// codes of a float map; tail: a conv writing the image.
enum class StepKind { head, conv, conv_int8, quantize, tail };
enum class Storage { f32, bf16, f16, u8, u16 };

struct Step {
  StepKind kind = StepKind::conv;
  int layer = -1;     // the description's layer it runs (quantize: the layer whose map it encodes)
  int op = -1;        // the engine's own index of the op that runs it (the CPU engine's op vectors)
  int source = -1;    // map it reads (-1: the image); quantize: the map it encodes
  int residual = -1;  // map added in its epilogue, or -1
  int outer = -1;     // map of the outer residual (ESRGAN's residual-in-residual), or -1
  int output = -1;    // map it writes (-1: the image)
  // Runs inside an op that runs several steps (the CPU engine's dense blocks): the concatenation it reads is
  // that op's own (no buffer), and its residual is never added in place (the op reads its input's rows
  // around the ones it writes).
  bool fused = false;
};

struct MapInfo {  // one layer's output
  int level = 1, channels = 0;  // resolution multiple and channel stride (padded as the engine's kernels need)
  bool stored = true;           // has storage of `storage` (an int8 conv may write codes only)
  Storage storage = Storage::f32;
  bool coded = false;           // has codes of the plan's code_storage (read by an int8 conv)
  int band_rows = 0;            // >0: held one band of this many rows at a time, not whole (CPU: run_chain)
  int buffer = -1, codes_buffer = -1;
  // A dense connection's input: channels [offset, offset + channels) of the buffer of map `group` (its first
  // member), whose channel stride is that map's group_channels; -1: a buffer of its own.
  int group = -1, offset = 0, group_channels = 0;
};

struct BufferInfo {
  int level = 1, channels = 0;
  Storage storage = Storage::f32;
  int band_rows = 0;  // >0: holds this many rows of one image (a band), not whole maps
};

struct StepPlan {
  std::vector<Step> steps;
  std::vector<MapInfo> maps;  // one per layer
  std::vector<BufferInfo> buffers;
  Storage code_storage = Storage::u8;
  int output_shuffle = 0;  // >0: the last layer writes a map that the image store shuffles by this factor

  // Lays out the concatenations (throws std::invalid_argument naming the layer, for `engine`, where one cannot
  // be placed), then assigns every stored map and code map a buffer. residual_in_place: a residual add may
  // write over its skip when nothing reads the skip later (not where a kernel reads its output's neighbours).
  void place_and_assign(const NetworkSpec& network, const std::string& engine, bool residual_in_place);
  // Channel stride of a map's buffer (its group's, for a dense connection's input).
  int stride(int map) const { return maps[map].group >= 0 ? maps[maps[map].group].group_channels : maps[map].channels; }

 private:
  void place_concatenations(const NetworkSpec& network, const std::string& engine);
  void assign_buffers(bool residual_in_place);
};

std::string storage_name(Storage storage);
size_t storage_bytes(Storage storage);

// The CUDA engine's steps: one per layer (head, 3x3 convs, a 9x9 or 3x3 last conv straight to the image, else
// a last conv to a float32 map that the image store shuffles and adds the image skip to), maps in `storage`
// (f16 or bf16), no residual in place where fused residual blocks may read a block's input while writing its
// output. Throws std::invalid_argument naming the first layer the CUDA kernels cannot run. Plain C++: built and
// tested on machines without CUDA.
StepPlan plan_cuda_steps(const NetworkSpec& network, Storage storage, bool fuse_residual_blocks);

// A k x k kernel (k odd, k <= 9) centred in a 9 x 9 one ([out][in][9][9]): the 9x9 head kernels run a smaller
// first conv (3 input channels: a few percent of a network's work), and the zero taps add exact zeros.
std::vector<float> centred_in_9x9(const std::vector<float>& weight, int cout, int cin, int k);

}  // namespace srgan_fast
