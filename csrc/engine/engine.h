// The CPU engine: a network description (NetworkSpec) on a batch of NHWC tiles, its layers mapped once onto
// the fused ops (head, 3x3 convs with their epilogues, tail, image store), its weights packed once, and its
// feature maps planned once: a map is freed after its last reader and its buffer reused by a later map of the
// same shape, and a residual add writes in place when nothing reads its other input later. The buffers are
// owned here and reused while the tile geometry repeats (no allocation in the steady state). At int8 the 3x3
// convs inside the network run on u8 codes: a map an int8 conv reads is also (or only) stored as codes, by
// its producer's epilogue or, after a layer that is not an int8 conv, by a quantize step.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "engine/engine_options.h"
#include "engine/network_spec.h"
#include "engine/step_plan.h"
#include "ops/cpu/dispatch.h"
#include "ops/ops.h"

namespace srgan_fast {


// Called after each step with the map it wrote: its float32 storage and/or its codes (null: not stored; a
// bf16 map is reported as neither). For calibration and tests; the maps are valid only during the call.
using LayerObserver = std::function<void(int layer, const FeatureMap* values, const FeatureMapU8* codes,
                                         const FeatureMapU16* codes_u16)>;

class CpuEngine {
 public:
  // Throws std::invalid_argument naming the first layer the CPU ops cannot run.
  CpuEngine(const NetworkSpec& network, const EngineOptions& options);

  // images: [n, h, w, image_channels] C-contiguous -> out: [n, scale*h, scale*w, 3] of the same dtype.
  // step_seconds (profiling): appended one (layer, seconds) per step run; a quantize step reports the layer it
  // encodes, the banded chain above the input's resolution the last layer, the image store layer -1.
  void run(const void* images, DType dtype, int n, int h, int w, void* out, const LayerObserver& observer = {},
           std::vector<std::pair<int, double>>* step_seconds = nullptr);
  // Bytes of feature maps and scratch a batch of this geometry needs.
  size_t workspace_bytes(int n, int h, int w) const;

  Precision precision() const { return precision_; }
  Precision float_precision() const { return float_precision_; }
  int int8_weight_max() const { return kernels_ ? kernels_->int8_weight_max : 0; }
  int int8_code_max() const { return code_max_; }
  // The layers that run on codes: int8 convs, and the convs of int8 dense blocks.
  int int8_layers() const;
  std::string path() const { return cpu::path_name(path_); }
  const std::string& path_note() const { return path_note_; }
  int threads() const { return threads_; }
  int scale() const { return scale_; }
  int image_channels() const { return image_channels_; }
  int num_layers() const { return int(plan_.maps.size()); }
  const StepPlan& plan() const { return plan_; }
  // Per network layer, the rows and columns of the output tile its kernel computes as one (Winograd's M; 1
  // for direct convolutions and for the int8 Winograd, whose integers equal the direct sums). A tile's bits
  // depend on its whole input patch, so the tiler aligns windows to these tiles (tiler/seams.py).
  std::vector<int> seam_tiles() const;

 private:
  // The steps above the input's resolution (from the first upsampling conv on: the tail, or the last conv
  // before the image store, at the end) run together in bands of the chain's input rows (run_chain), so that
  // their maps, the network's largest (C channels at 2x and 4x the input's resolution: 1 GB at 512² in), are
  // never whole in memory. A band starts on a multiple of kBandAlign, and each conv computes its rows rounded
  // out to its tiles (chain_rows): every tile falls where it falls in a whole map, so banding changes no bit.
  static constexpr int kBandAlign = 12;
  struct ChainStep {  // what chain_rows needs of each chain step
    int conv_level = 1;  // rows of its conv: conv_level * h (its source's level times its upsampling)
    int shuffle = 1, upsample = 1, radius = 1, tile = 1;
  };

  // Residual dense blocks that one op runs (dense_block_bf16, or dense_block_int8): the steps [first_step,
  // first_step + steps), all 3x3 convs, of which only the last one's map is stored (the others' maps have no
  // storage).
  struct DenseBlock {
    int first_step = 0, steps = 0, channels = 0, growth = 0;
    float skip_scale = 1.f, outer_scale = 1.f;
    PackedConv3x3 weights[kMaxDenseConvs];  // bf16: views of its convs' ops
    bool int8 = false;
    std::vector<Conv3x3Int8Weights> int8_weights;  // int8: its convs packed for its codes (pack_dense_conv_int8)
    QuantCodes codes[kMaxDenseConvs];              // int8: of its input, then of each conv's output but the last
  };

  void add_layer(const NetworkSpec& network, int index, const EngineOptions& options);
  void plan_dense_blocks(const NetworkSpec& network, const EngineOptions& options);
  // Its params but for the maps (set by run_dense_block); int8 weights point into int8_views.
  DenseBlockParams dense_block_params(const DenseBlock& block, PackedConv3x3Int8 (&int8_views)[kMaxDenseConvs]) const;
  // int8: the block packed for the codes of its parts, or false where a part has none or the path cannot run it.
  bool pack_dense_block_int8(const NetworkSpec& network, const EngineOptions& options, DenseBlock& block) const;
  void run_dense_block(const DenseBlock& block, int n, int h, int w, const ExecContext& ctx);
  void plan_storage(const NetworkSpec& network, const EngineOptions& options);
  void prepare(int n, int h, int w);
  size_t buffer_floats(const BufferInfo& b, int n, int h, int w) const;
  size_t scratch_floats_per_thread(int w) const;
  FeatureMap map_view(int map, int n, int h, int w) const;
  FeatureMapBf16 map_view_bf16(int map, int n, int h, int w) const;
  // The codes of `map` in the one of the two views its storage uses (u16 where code_max_ > 255); the other
  // is left empty, as the kernels' params expect.
  void codes_views(int map, int n, int h, int w, FeatureMapU8& u8, FeatureMapU16& u16) const;
  void run_step(const Step& step, const void* images, DType dtype, int n, int h, int w, void* out,
                const ExecContext& ctx);
  void plan_chain(const std::vector<int>& float_readers, const std::vector<int>& code_readers,
                  const NetworkSpec& network);
  // For the band [first, last) of the chain input's rows: per chain step, the rows [lo, hi) of its output
  // (its map's, or the image's) it computes.
  std::vector<std::pair<int, int>> chain_rows(int first, int last, int h) const;
  void run_chain(const void* images, DType dtype, int n, int h, int w, void* out, const ExecContext& ctx);

  Precision precision_;
  std::string path_note_;  // set where the chosen path failed its self-check and the next one runs
  cpu::Path path_;
  const cpu::CpuKernels* kernels_;
  Precision float_precision_;  // of the layers that are not int8 convs: bf16 where it runs, else fp32
  int threads_;
  int scale_;
  int image_channels_;
  ImageSkip image_skip_;
  int code_max_ = 0;  // int8: codes span [0, code_max_]
  int band_rows_ = 0;  // the chain's band, in rows of its input map (0: no chain)
  int chain_begin_ = -1;  // the chain's first step (index into plan_.steps), or -1
  std::vector<ChainStep> chain_;
  std::vector<DenseBlock> dense_blocks_;  // in step order
  std::vector<HeadOp> heads_;
  std::vector<Conv3x3Op> convs_;
  std::vector<Conv3x3Int8Op> int8_convs_;
  std::vector<TailOp> tails_;
  StepPlan plan_;
  std::vector<QuantCodes> quant_;  // per map: its codes' scale and zero point (int8, coded maps)
  // Geometry the buffers are laid out for: capacity in images, and the tile size.
  int capacity_n_ = 0, h_ = 0, w_ = 0;
  std::vector<std::unique_ptr<AlignedBuffer>> buffers_;
  AlignedBuffer scratch_;
  std::mutex mutex_;  // one run at a time: the buffers are shared
};

}  // namespace srgan_fast
