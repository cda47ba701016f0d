// The command lines of angular-train and angular-compare: the options of a run, and the exit
// codes (0 success, 2 usage error with usage text, 1 data or runtime error in one line).
// Compiled once, in this library: the programs' own files only call these.

#include "checkpoint.hpp"
#include "cli.hpp"
#include "compare.hpp"
#include "trainer.hpp"

#include <CLI/CLI.hpp>
#include <angular/constants.hpp>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <stdexcept>
#include <string>

namespace train {

namespace {

/// Registers the options of a training run on `app` (all but --loss, which differs).
void add_run_options(CLI::App& app, Options& o) {
  app.add_option("--dataset", o.dataset, "fashion-mnist, cifar10 or cifar100")
      ->check(CLI::IsMember({"fashion-mnist", "cifar10", "cifar100"}));
  app.add_option("--data", o.data, "dataset folder (default: Debian's Fashion-MNIST)");
  app.add_option("--epochs", o.epochs, "epochs (default: the paper's Table 1)")->check(CLI::PositiveNumber);
  app.add_option("--batch-size", o.batch_size, "batch size (default: Table 1)")->check(CLI::PositiveNumber);
  app.add_option("--lr", o.lr, "peak learning rate of the one-cycle policy (default: Table 1)")
      ->check(CLI::PositiveNumber);
  app.add_option("--k", o.k, "Arc's k (default: max(3, (2/pi) ln(99 (C-1))))")->check(CLI::PositiveNumber);
  app.add_option("--scale", o.scale, "s of the scaled-cosine margins (default: 16 for 10 classes, 32 for 100)")
      ->check(CLI::PositiveNumber);
  app.add_option("--margin", o.margin,
                 "angular margin m in radians of arcface, subcenter-arcface, curricularface, combined (m2) "
                 "(default 0.2) and adaface (default 0.4)")
      ->check(CLI::Range(0.0, angular::kPi));
  app.add_option("--m1", o.m1, "combined: multiplicative angular margin (default 1)")->check(CLI::PositiveNumber);
  app.add_option("--m3", o.m3, "combined: additive cosine margin (default 0)")->check(CLI::NonNegativeNumber);
  app.add_option("--sphereface-m", o.sphereface_m, "sphereface: integer angular margin (default 4)")
      ->check(CLI::Range(1, 64));
  app.add_option("--sphereface-lambda", o.sphereface_lambda,
                 "sphereface: weight of the plain logit (default 5, the paper's final one)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--sub-centers", o.sub_centers, "subcenter-arcface: sub-centers per class (default 3)")
      ->check(CLI::PositiveNumber);
  app.add_option("--lambda", o.lambda, "center loss weight (default 0.003)")->check(CLI::NonNegativeNumber);
  app.add_option("--alpha", o.alpha, "center learning rate (default 0.5)")->check(CLI::Range(1e-9, 1.0));
  app.add_option("--embedding-dim", o.embedding_dim, "extra linear embedding of this width (2 for plots)")
      ->check(CLI::NonNegativeNumber);
  app.add_flag("--augment", o.augment, "random crop (4-pixel padding) and horizontal flip");
  app.add_option("--train-limit", o.train_limit, "use the first N training images")->check(CLI::NonNegativeNumber);
  app.add_option("--test-limit", o.test_limit, "use the first N test images")->check(CLI::NonNegativeNumber);
  app.add_option("--device", o.device, "cpu or cuda")->check(CLI::IsMember({"cpu", "cuda"}));
  app.add_option("--threads", o.threads, "CPU threads")->check(CLI::PositiveNumber);
  app.add_option("--seed", o.seed, "random seed");
  app.add_option("--timeout", o.timeout_seconds,
                 "data-parallel runs (torchrun): seconds a rank waits for the others before it fails (default 300)")
      ->check(CLI::PositiveNumber);
  app.add_option("--sample-rate", o.sample_rate,
                 "data-parallel runs (torchrun): the share of each rank's classes the loss sees per step, the "
                 "batch's labels and a uniform sample of the others (PartialFC; default 1, every class)")
      ->check(CLI::Validator(
          [](std::string& value) {
            double rate = 0;
            return CLI::detail::lexical_cast(value, rate) && rate > 0 && rate <= 1
                       ? std::string()
                       : "the sample rate must be in (0, 1], got " + value;
          },
          "in (0, 1]"));
  app.add_option("--out", o.out, "output folder")->required();
  app.add_flag("--resume", o.resume, "continue from the folder's last completed epoch");
  app.add_option("--stop-after", o.stop_after, "stop once this epoch is done (continue later with --resume)")
      ->check(CLI::NonNegativeNumber);
}

/// Parses, runs `body`, and maps every outcome to the exit code.
int run_cli(CLI::App& app, int argc, char** argv, const std::function<void()>& body) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::fputs(app.help().c_str(), stdout);
    return 0;
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "%s: %s\n\n%s", app.get_name().c_str(), e.what(), app.help().c_str());
    return 2;
  }
  try {
    body();
    return 0;
  } catch (const c10::DistError& e) {
    // A collective of a data-parallel run: mostly another rank that stopped (its own message
    // says why) or did not answer within --timeout.
    const char* rank = std::getenv("RANK");
    std::fprintf(stderr, "%s: error: rank %s lost the other ranks (one stopped or timed out): %s\n",
                 app.get_name().c_str(), rank ? rank : "?", e.what_without_backtrace());
  } catch (const c10::Error& e) {
    std::fprintf(stderr, "%s: error: %s\n", app.get_name().c_str(), e.what_without_backtrace());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: error: %s\n", app.get_name().c_str(), e.what());
  }
  return 1;
}

}  // namespace

int train_main(int argc, char** argv) {
  Options options;
  CLI::App app{"Train a ResNet with one of angular's losses and measure its angles", "angular-train"};
  add_run_options(app, options);
  CLI::Option* loss = app.add_option("--loss", options.loss,
                                     "soft, center, arcface, arc (the paper's), cosface, normface, combined, "
                                     "sphereface, subcenter-arcface, adaface or curricularface")
                          ->check(CLI::IsMember(loss_names()));
  std::string export_path;
  CLI::Option* exported = app.add_option("--export-head", export_path,
                                         "write the whole sharded head of the --out folder's data-parallel "
                                         "checkpoint as one file (what torch::load gives the single-process "
                                         "loss module), one shard in memory at a time, and exit");
  loss->excludes(exported);
  app.callback([&] {
    if (loss->count() == 0 && exported->count() == 0) throw CLI::RequiredError("--loss");
  });
  return run_cli(app, argc, argv, [&] {
    if (!export_path.empty()) {
      export_head(options.out, export_path);
      std::printf("the head of %s: %s\n", options.out.c_str(), export_path.c_str());
      return;
    }
    const RunResult result = Trainer(options).run();
    if (!result.written) return;  // rank 0 of a data-parallel run reports
    const EpochRow& last = result.rows.back();
    std::printf("%s: test accuracy %.4f (error %.2f %%), MAP@R %.4f, WCIntra %.4f, WInter %.4f, CInter %.4f; %s\n",
                options.loss.c_str(), last.test_acc, 100 * (1 - last.test_acc), last.map_at_r, last.wc_intra,
                last.w_inter, last.c_inter, options.out.c_str());
  });
}

int compare_main(int argc, char** argv) {
  Options options;
  std::vector<std::string> losses = {"soft", "center", "arcface", "arc"};
  std::string seeds_text;
  CLI::App app{"Train the same ResNet with each of the four losses and compare them", "angular-compare"};
  add_run_options(app, options);
  app.add_option("--losses", losses, "which losses (default: the paper's four)")->check(CLI::IsMember(loss_names()));
  app.add_option("--seeds", seeds_text,
                 "run every loss with each of these seeds: N for 1 to N, or a list a,b,c; the table gains each "
                 "loss's mean and sample standard deviation over them (runs in OUT/seed-S/LOSS)")
      ->excludes("--seed");
  return run_cli(app, argc, argv, [&] {
    // Each loss's run would start a process group of its own on the same port.
    if (const auto env = angular::distributed::launch_environment(); env && env->world_size > 1)
      throw std::invalid_argument("angular-compare runs as one process (WORLD_SIZE is " +
                                  std::to_string(env->world_size) + "); start angular-train under torchrun instead");
    const std::filesystem::path root = options.out;
    const std::vector<uint64_t> seeds =
        seeds_text.empty() ? std::vector<uint64_t>{options.seed} : parse_seeds(seeds_text);
    std::vector<CompareRow> rows;
    std::fputs(compare_line(nullptr).c_str(), stdout);
    for (const uint64_t seed : seeds) {
      for (const auto& loss : losses) {
        Options run = options;
        run.loss = loss;
        run.seed = seed;
        run.out = (seeds_text.empty() ? root / loss : root / ("seed-" + std::to_string(seed)) / loss).string();
        // With --resume a finished run gives its rows back untrained; its seconds are those of its
        // epochs (training and evaluation), whenever they ran.
        const RunResult result = Trainer(run).run();
        const EpochRow& last = result.rows.back();
        CompareRow row{loss, std::to_string(seed), 100 * (1 - last.test_acc), last.map_at_r, last.w_inter,
                       last.c_inter, last.wc_intra, 0.0};
        for (const EpochRow& epoch : result.rows) row.seconds += epoch.seconds;
        rows.push_back(row);
        std::fputs(compare_line(&row).c_str(), stdout);
        std::fflush(stdout);
        // The tables so far after every run: an interrupted comparison keeps what it measured.
        write_atomically(root / "compare.csv", compare_csv(rows));
        write_atomically(root / "compare.md", compare_markdown(rows));
      }
    }
    for (const CompareRow& summary : summary_rows(rows)) std::fputs(compare_line(&summary).c_str(), stdout);
  });
}

}  // namespace train
