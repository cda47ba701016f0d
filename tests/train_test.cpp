// The reference trainers: data parsers on files written here (valid, truncated, corrupt),
// the one-cycle schedule, a 2-step run per loss, and resumption.

#include <train/trainer.hpp>

#include "support/fashion_mnist_files.hpp"

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

namespace fs = std::filesystem;

namespace {

void write_bytes(const fs::path& path, const std::vector<uint8_t>& bytes) {
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

void write_text(const fs::path& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }

using angular::test::fresh_dir;
using angular::test::idx;
using angular::test::read_text;
using angular::test::write_gzip;
using angular::test::write_tiny_fashion_mnist;

/// `n` CIFAR-10 records whose images carry their class as a brightness pattern.
std::vector<uint8_t> cifar10_records(int n, uint8_t bad_label = 255) {
  std::vector<uint8_t> out;
  for (int r = 0; r < n; ++r) {
    const uint8_t label = r == 1 && bad_label != 255 ? bad_label : static_cast<uint8_t>(r % 10);
    out.push_back(label);
    for (int p = 0; p < 3072; ++p) out.push_back(static_cast<uint8_t>((p / 96 % 10 == label) ? 230 : (r * 7 + p) % 50));
  }
  return out;
}

}  // namespace

TEST_CASE("IDX parser: valid, every truncated header, short payload, wrong magic, trailing bytes",
          "[train][data]") {
  const std::vector<uint8_t> payload(2 * 3 * 4, 7);
  const auto good = idx({2, 3, 4}, payload);
  const train::IdxLayout layout = train::parse_idx(good, 3, "good");
  CHECK(layout.sizes == std::vector<int64_t>{2, 3, 4});
  CHECK(layout.payload_offset == 16);
  for (size_t length = 0; length < 16; ++length) {
    const std::vector<uint8_t> cut(good.begin(), good.begin() + length);
    CHECK_THROWS_WITH(train::parse_idx(cut, 3, "cut.gz"), Catch::Contains("cut.gz: truncated header"));
  }
  for (size_t missing : {1, 5, 24}) {
    const std::vector<uint8_t> cut(good.begin(), good.end() - missing);
    CHECK_THROWS_WITH(train::parse_idx(cut, 3, "short.gz"), Catch::Contains("short.gz: payload is"));
  }
  auto trailing = good;
  trailing.push_back(0);
  CHECK_THROWS_WITH(train::parse_idx(trailing, 3, "long.gz"), Catch::Contains("the header says 24"));
  auto magic = good;
  magic[2] = 0x0D;  // float data
  CHECK_THROWS_WITH(train::parse_idx(magic, 3, "magic.gz"), Catch::Contains("bad magic number"));
  CHECK_THROWS_WITH(train::parse_idx(good, 1, "rank.gz"), Catch::Contains("bad magic number"));
  CHECK_THROWS_WITH(train::parse_idx(idx({0, 3, 4}, {}), 3, "zero.gz"), Catch::Contains("dimension 0 is 0"));
  // Sizes whose product passes 2^40 (or would overflow 64 bits) are caught at the dimension
  // that makes it so.
  CHECK_THROWS_WITH(train::parse_idx(idx({65536, 65536, 65536}, {}), 3, "huge.gz"),
                    Catch::Contains("dimension 2 is 65536, making an array of over 2^40 bytes"));
  CHECK_THROWS_WITH(train::parse_idx(idx({2, 0xFFFFFFFF, 0xFFFFFFFF}, payload), 3, "huge.gz"),
                    Catch::Contains("dimension 2 is 4294967295"));
}

namespace {

/// `bytes` as one gzip member, in memory; `repeat` times over (a large file from a small buffer).
std::vector<uint8_t> gzip(const std::vector<uint8_t>& bytes, int repeat = 1) {
  z_stream s{};
  REQUIRE(deflateInit2(&s, Z_BEST_COMPRESSION, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) == Z_OK);
  std::vector<uint8_t> out;
  std::vector<uint8_t> chunk(1 << 16);
  for (int r = 0; r < repeat; ++r) {
    s.next_in = const_cast<Bytef*>(bytes.data());
    s.avail_in = static_cast<uInt>(bytes.size());
    const int flush = r + 1 == repeat ? Z_FINISH : Z_NO_FLUSH;
    int code = Z_OK;
    do {
      s.next_out = chunk.data();
      s.avail_out = static_cast<uInt>(chunk.size());
      code = deflate(&s, flush);
      out.insert(out.end(), chunk.data(), chunk.data() + (chunk.size() - s.avail_out));
    } while (s.avail_out == 0 || (flush == Z_FINISH && code != Z_STREAM_END));
  }
  deflateEnd(&s);
  return out;
}

}  // namespace

TEST_CASE("gzip: members, plain bytes, truncation, corruption, trailing bytes and the size cap", "[train][data]") {
  const std::vector<uint8_t> text = {'a', 'n', 'g', 'u', 'l', 'a', 'r'};
  const auto one = gzip(text);
  CHECK(train::inflate_gzip(one, "one.gz") == text);
  CHECK(train::inflate_gzip(text, "plain") == text);  // as gzread: a plain file reads as itself
  auto two = one;
  two.insert(two.end(), one.begin(), one.end());
  auto twice = text;
  twice.insert(twice.end(), text.begin(), text.end());
  CHECK(train::inflate_gzip(two, "two.gz") == twice);
  for (size_t length = 2; length < one.size(); ++length)
    CHECK_THROWS_WITH(train::inflate_gzip(std::vector<uint8_t>(one.begin(), one.begin() + length), "cut.gz"),
                      Catch::StartsWith("cut.gz: corrupt gzip data"));
  auto flipped = one;
  flipped[flipped.size() - 6] ^= 0x10;  // the CRC-32 in the trailer
  CHECK_THROWS_WITH(train::inflate_gzip(flipped, "flip.gz"), Catch::Contains("flip.gz: corrupt gzip data"));
  auto trailing = one;
  trailing.push_back(0);
  CHECK_THROWS_WITH(train::inflate_gzip(trailing, "tail.gz"), Catch::Contains("bytes after the end"));
  // 257 MiB of zeros in 256 KiB of gzip: refused once the output passes the cap.
  const auto bomb = gzip(std::vector<uint8_t>(1 << 20, 0), 257);
  CHECK(bomb.size() < (size_t{1} << 20));
  CHECK_THROWS_WITH(train::inflate_gzip(bomb, "bomb.gz"), Catch::Contains("decompresses to more than 256 MiB"));
}

TEST_CASE("Fashion-MNIST files: labels, counts and gzip are checked", "[train][data]") {
  const fs::path dir = fresh_dir("fmnist");
  write_tiny_fashion_mnist(dir, 20);
  const train::Dataset d = train::read_fashion_mnist(dir.string(), "train");
  CHECK(d.images.sizes() == torch::IntArrayRef{20, 1, 28, 28});
  CHECK(d.labels[13].item<int64_t>() == 3);
  CHECK(d.images.max().item<float>() <= 1.0f);
  write_gzip(dir / "t10k-labels-idx1-ubyte.gz", idx({19}, std::vector<uint8_t>(19, 1)));
  CHECK_THROWS_WITH(train::read_fashion_mnist(dir.string(), "t10k"), Catch::Contains("19 labels for 20 images"));
  write_gzip(dir / "t10k-labels-idx1-ubyte.gz", idx({20}, std::vector<uint8_t>(20, 10)));
  CHECK_THROWS_WITH(train::read_fashion_mnist(dir.string(), "t10k"), Catch::Contains("label 0 is 10, outside [0, 10)"));
  write_bytes(dir / "t10k-labels-idx1-ubyte.gz", {0x1f, 0x8b, 8, 0, 0, 0});
  CHECK_THROWS_AS(train::read_fashion_mnist(dir.string(), "t10k"), train::DataError);
  CHECK_THROWS_WITH(train::read_fashion_mnist((dir / "absent").string(), "train"), Catch::Contains("cannot open"));
}

TEST_CASE("CIFAR parsers: record counts and label ranges", "[train][data]") {
  const auto ten = cifar10_records(4);
  const train::Dataset d = train::parse_cifar(ten, train::kCifar10, "batch.bin");
  CHECK(d.images.sizes() == torch::IntArrayRef{4, 3, 32, 32});
  CHECK(d.labels[3].item<int64_t>() == 3);
  // One whole record less is a valid, shorter file; anything else is not.
  CHECK(train::parse_cifar(std::vector<uint8_t>(ten.begin(), ten.end() - 3073), train::kCifar10, "three.bin").size() ==
        3);
  for (size_t cut : {size_t{1}, size_t{2}, size_t{3072}, size_t{3074}, size_t{6000}})
    CHECK_THROWS_WITH(
        train::parse_cifar(std::vector<uint8_t>(ten.begin(), ten.end() - cut), train::kCifar10, "cut.bin"),
        Catch::Contains("cut.bin") && Catch::Contains("whole number"));
  CHECK_THROWS_WITH(train::parse_cifar({}, train::kCifar10, "empty.bin"), Catch::Contains("empty.bin: 0 bytes"));
  CHECK_THROWS_WITH(train::parse_cifar(cifar10_records(3, 10), train::kCifar10, "label.bin"),
                    Catch::Contains("record 1 has label 10"));
  // CIFAR-100: coarse (< 20) then fine (< 100) label bytes.
  std::vector<uint8_t> hundred;
  for (int r = 0; r < 2; ++r) {
    hundred.push_back(static_cast<uint8_t>(r == 1 ? 20 : 19));
    hundred.push_back(99);
    hundred.insert(hundred.end(), 3072, 1);
  }
  CHECK_THROWS_WITH(train::parse_cifar(hundred, train::kCifar100, "c100.bin"),
                    Catch::Contains("record 1 has label 20"));
  hundred[3074] = 3;
  const train::Dataset h = train::parse_cifar(hundred, train::kCifar100, "c100.bin");
  CHECK(h.labels[0].item<int64_t>() == 99);
  CHECK(h.classes == 100);
}

TEST_CASE("the one-cycle schedule at known steps", "[train][schedule]") {
  const train::OneCycle cycle{1000, 0.1};
  CHECK(cycle.lr(0) == Approx(0.1 / 25));
  CHECK(cycle.momentum(0) == Approx(0.95));
  CHECK(cycle.lr(299) == Approx(0.1));  // the peak: 30 % of the steps, minus one
  CHECK(cycle.momentum(299) == Approx(0.85));
  CHECK(cycle.lr(999) == Approx(0.1 / 25 / 1e4));
  CHECK(cycle.momentum(999) == Approx(0.95));
  // On the way up: OneCycleLR's cosine, 0.1 + (0.004 − 0.1)/2·(1 + cos(π·149/299)).
  CHECK(cycle.lr(149) == Approx(0.1 + (0.004 - 0.1) / 2 * (1 + std::cos(angular::kPi * 149 / 299))));
  CHECK(cycle.lr(149) == Approx(0.052).epsilon(0.01));
  for (int64_t s = 1; s < 1000; ++s) {
    if (s <= 299) CHECK(cycle.lr(s) >= cycle.lr(s - 1));
    else CHECK(cycle.lr(s) <= cycle.lr(s - 1));
  }
}

TEST_CASE("augmentation: shapes, 4-pixel shifts and flips", "[train][data]") {
  auto generator = at::make_generator<at::CPUGeneratorImpl>(3);
  const torch::Tensor batch = torch::rand({64, 3, 32, 32}) + 0.5;  // no zeros inside
  const torch::Tensor out = train::augment(batch, generator);
  CHECK(out.sizes() == batch.sizes());
  // A crop shifted by up to 4 pixels brings in at most 4 rows or columns of zero padding.
  const torch::Tensor zero_rows = (out.abs().sum({1, 3}) == 0).sum(1);
  CHECK(zero_rows.max().item<int64_t>() <= 4);
}

/// Options of a quiet run over a fresh tiny Fashion-MNIST (32 images, 2 steps of 16 per epoch).
static train::Options tiny_run(const std::string& name, int64_t epochs) {
  const fs::path data = fresh_dir("data-" + name);
  write_tiny_fashion_mnist(data, 32);
  train::Options o;
  o.data = data.string();
  o.batch_size = 16;
  o.epochs = epochs;
  o.threads = 2;
  o.quiet = true;
  return o;
}

TEST_CASE("two training steps per loss on tiny data, and resume equals an uninterrupted run",
          "[train][smoke]") {
  train::Options o = tiny_run("smoke", 1);
  for (const std::string& loss : train::loss_names()) {
    o.loss = loss;
    o.out = fresh_dir("smoke-" + loss).string();
    const train::RunResult r = train::Trainer(o).run();
    INFO(loss);
    CHECK(r.rows.size() == 1);
    CHECK(std::isfinite(r.rows[0].train_loss));
    CHECK(std::isfinite(r.rows[0].w_inter));
    CHECK(r.summary["test_accuracy"].get<double>() >= 0.0);
    for (const char* file : {"metrics.csv", "summary.json", "checkpoint.pt", "histograms.csv", "test_features.csv"})
      CHECK(fs::exists(fs::path(o.out) / file));
    std::ifstream csv(fs::path(o.out) / "metrics.csv");
    std::string header;
    std::getline(csv, header);
    CHECK(header ==
          "epoch,lr,train_loss,train_acc,test_acc,wc_intra,w_inter,c_inter,seconds,p_at_1,r_precision,map_at_r");
    CHECK(r.rows[0].map_at_r >= 0.0);
    CHECK(r.rows[0].map_at_r <= r.rows[0].r_precision + 1e-12);  // AP@R <= R-precision per query
  }

  // Resumption: 1 epoch, stop, resume for the other 2 = 3 epochs in one go.
  o.loss = "center";
  o.epochs = 3;
  o.out = fresh_dir("whole").string();
  const auto whole = train::Trainer(o).run();
  o.out = fresh_dir("resumed").string();
  train::Options interrupted = o;
  interrupted.stop_after = 1;
  CHECK(train::Trainer(interrupted).run().rows.size() == 1);
  train::Options resumed = o;
  resumed.resume = true;
  const auto rest = train::Trainer(resumed).run();
  REQUIRE(rest.rows.size() == 3);
  for (size_t e = 0; e < 3; ++e) {
    INFO("epoch " << e + 1);
    CHECK(rest.rows[e].train_loss == Approx(whole.rows[e].train_loss).epsilon(1e-5));
    CHECK(rest.rows[e].test_acc == Approx(whole.rows[e].test_acc).epsilon(1e-5));
    CHECK(rest.rows[e].wc_intra == Approx(whole.rows[e].wc_intra).epsilon(1e-5));
    CHECK(rest.rows[e].map_at_r == Approx(whole.rows[e].map_at_r).epsilon(1e-5));
    CHECK(rest.rows[e].lr == Approx(whole.rows[e].lr).epsilon(1e-7));  // CSV keeps 8 digits
  }
}

TEST_CASE("a non-finite loss stops the run and keeps the last good checkpoint", "[train][smoke]") {
  train::Options o = tiny_run("diverge", 2);
  o.loss = "soft";
  o.out = fresh_dir("diverge").string();
  train::Options first = o;
  first.stop_after = 1;
  train::Trainer(first).run();
  const auto good = fs::file_size(fs::path(o.out) / "checkpoint.pt");
  // Resume with a learning rate that overflows the weights in the second epoch.
  o.resume = true;
  o.lr = 1e38;
  CHECK_THROWS_AS(train::Trainer(o).run(), train::Diverged);
  CHECK(fs::file_size(fs::path(o.out) / "checkpoint.pt") == good);
  const std::string metrics = read_text(fs::path(o.out) / "metrics.csv");
  CHECK(train::parse_metrics_csv(metrics, 1, "metrics.csv").size() == 1);
  CHECK_THROWS_WITH(train::parse_metrics_csv(metrics, 2, "metrics.csv"),
                    Catch::Contains("1 rows for the 2 epochs the checkpoint holds"));
}

TEST_CASE("resume refuses a corrupt checkpoint, one of other options, and a metrics.csv without its rows",
          "[train][smoke]") {
  train::Options o = tiny_run("refuse", 2);
  o.loss = "arc";
  o.embedding_dim = 2;
  o.out = fresh_dir("refuse").string();
  o.stop_after = 1;
  train::Trainer(o).run();
  const fs::path checkpoint = fs::path(o.out) / "checkpoint.pt", metrics = fs::path(o.out) / "metrics.csv";
  const std::string good = read_text(checkpoint), good_metrics = read_text(metrics);
  o.stop_after = 0;
  o.resume = true;
  const auto refused = [&](const std::string& bytes, const std::string& message) {
    write_text(checkpoint, bytes);
    CHECK_THROWS_WITH(train::Trainer(o).run(), Catch::Contains("checkpoint.pt: " + message));
  };
  refused(good.substr(0, good.size() / 2), "the header says");
  refused(good.substr(0, 10), "not a checkpoint of angular-train");
  std::string flipped = good;
  flipped[flipped.size() / 2] ^= 0x04;
  refused(flipped, "corrupt (its CRC-32 does not match)");
  std::string oversized = good;
  oversized[15] = '\x7f';  // the length's top byte
  refused(oversized, "the header says");
  // A checkpoint of a run with another embedding width: its tensors do not fit this model.
  write_text(checkpoint, good);
  train::Options other = o;
  other.embedding_dim = 3;
  CHECK_THROWS_WITH(train::Trainer(other).run(), Catch::Contains("(a checkpoint of other options?)"));
  // One of the same shapes but another setting of its loss (before: resumed with the new k).
  other = o;
  other.k = 6.0;
  CHECK_THROWS_WITH(train::Trainer(other).run(),
                    Catch::Contains("its run's loss is angular::ArcLoss(num_classes=10, embedding_dim=2, k=4.32414), "
                                    "this run's angular::ArcLoss(num_classes=10, embedding_dim=2, k=6)"));
  write_text(metrics, good_metrics.substr(0, good_metrics.find('\n') + 1));
  CHECK_THROWS_WITH(train::Trainer(o).run(), Catch::Contains("metrics.csv: 0 rows for the 1 epochs"));
  write_text(metrics, good_metrics);
  CHECK(train::Trainer(o).run().rows.size() == 2);  // the good files still resume
}

TEST_CASE("a checkpoint keeps the class sampler's generator, so that a resumed run draws what it would have",
          "[train]") {
  const fs::path dir = fresh_dir("sampler");
  torch::manual_seed(2);
  torch::nn::Linear model(3, 2), loss(2, 4);
  torch::optim::SGD optimizer(model->parameters(), torch::optim::SGDOptions(0.1).momentum(0.9));
  at::Generator sampler = at::make_generator<at::CPUGeneratorImpl>(7);
  torch::randperm(100, sampler, torch::kLong);  // some steps' draws
  train::save_checkpoint(dir, 3, "settings", {*model, *loss, optimizer, sampler}, train::DataParallel{});
  const torch::Tensor next = torch::randperm(100, sampler, torch::kLong);

  at::Generator fresh = at::make_generator<at::CPUGeneratorImpl>(7);
  const train::DataParallel one_process;
  CHECK(train::load_checkpoint(dir, torch::kCPU, {*model, *loss, optimizer, fresh}, "settings", one_process) == 3);
  CHECK(torch::equal(torch::randperm(100, fresh, torch::kLong), next));
  CHECK_THROWS_WITH(
      train::load_checkpoint(dir, torch::kCPU, {*model, *loss, optimizer, fresh}, "other", one_process),
      Catch::Contains("checkpoint.pt: its run's loss is settings, this run's other"));
}

TEST_CASE("epoch logs keep the rows of the epochs done and drop the rest", "[train][data]") {
  const std::string log = "epoch,step,loss\n1,1,0.5\n2,1,0.4\nnot a row\n3,1,0.3\n0,1,9\n-2,1,9\n2,2,0.2\n";
  CHECK(train::epoch_rows_up_to(log, 2) == "1,1,0.5\n2,1,0.4\n2,2,0.2\n");
  CHECK(train::epoch_rows_up_to(log, 0).empty());
  CHECK(train::epoch_rows_up_to("", 5).empty());
}

TEST_CASE("ForeachSGD takes torch::optim::SGD's steps", "[train]") {
  for (const bool nesterov : {false, true}) {
    INFO("nesterov " << nesterov);
    torch::manual_seed(5);
    std::vector<torch::Tensor> ours, theirs;
    for (const auto& shape : {std::vector<int64_t>{3, 4}, std::vector<int64_t>{7}, std::vector<int64_t>{2, 2, 2}}) {
      ours.push_back(torch::randn(shape, torch::kDouble).requires_grad_());
      theirs.push_back(ours.back().detach().clone().requires_grad_());
    }
    const auto options = torch::optim::SGDOptions(0.1).momentum(0.9).weight_decay(5e-4).nesterov(nesterov);
    train::ForeachSGD foreach_sgd(ours, options);
    torch::optim::SGD sgd(theirs, options);
    for (int step = 0; step < 4; ++step) {
      for (size_t i = 0; i < ours.size(); ++i) {
        if (step == 2 && i == 1) continue;  // a parameter without a gradient this step
        const torch::Tensor g = torch::randn(ours[i].sizes(), torch::kDouble);
        ours[i].mutable_grad() = g.clone();
        theirs[i].mutable_grad() = g.clone();
      }
      foreach_sgd.step();
      sgd.step();
      foreach_sgd.zero_grad();
      sgd.zero_grad();
      for (size_t i = 0; i < ours.size(); ++i) CHECK(torch::allclose(ours[i], theirs[i], 1e-14, 1e-14));
    }
  }
}
