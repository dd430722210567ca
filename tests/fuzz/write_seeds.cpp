// Writes the seed corpora whose files the library itself writes: corpus/checkpoint (a checkpoint of a small MLP,
// without its 8-byte checksum, which fuzz_checkpoint appends), corpus/eigen_mixture (a header, a NUL byte and its
// arrays file), corpus/study_ini (study.ini files) and corpus/results_json (results.json files), valid ones and a
// few near-valid variants. Built with the fuzz targets (target fuzz_write_seeds); run from the source root:
//   build/fuzz/tests/fuzz/fuzz_write_seeds tests/fuzz/corpus
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "experiments/study/study.hpp"
#include "models/checkpoint.hpp"
#include "models/image_mixture.hpp"

namespace fs = std::filesystem;
using namespace scoresde;

namespace {

std::string read(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void put(const fs::path& dir, const std::string& name, const std::string& bytes) {
  fs::create_directories(dir);
  std::ofstream(dir / name, std::ios::binary) << bytes;
}

void checkpoints(const fs::path& dir, const fs::path& scratch) {
  for (const bool fourier : {false, true}) {
    Checkpoint c;
    c.architecture.dim = 2;
    c.architecture.hidden = {3, 3};
    c.architecture.time_embedding = fourier ? TimeEmbedding::fourier : TimeEmbedding::raw;
    c.architecture.fourier_features = 2;
    c.architecture.precision = fourier ? Precision::float64 : Precision::float32;
    c.frequencies = fourier ? Vector::LinSpaced(2, 0.5, 1.0) : Vector();
    c.weights = Vector::LinSpaced(c.architecture.parameter_count(), -1.0, 1.0);
    c.ema = c.weights / 2;
    c.scaling.mean = Vector::Zero(2);
    c.scaling.scale = Vector::Ones(2);
    c.training = {{"iterations", 1}};
    const fs::path path = scratch / "model.ckpt";
    save_checkpoint(path.string(), c);
    const std::string bytes = read(path);
    const std::string body = bytes.substr(0, bytes.size() - 8);  // fuzz_checkpoint appends the checksum
    const std::string name = fourier ? "fourier_f8" : "raw_f4";
    put(dir, name, body);
    put(dir, name + "_truncated", body.substr(0, body.size() - 12));
    std::string wrong_count = body;
    const auto at = wrong_count.find("\"count\":");
    if (at != std::string::npos) wrong_count.replace(at, 9, "\"count\":9");
    put(dir, name + "_wrong_count", wrong_count);
  }
}

void eigen_mixtures(const fs::path& dir, const fs::path& scratch) {
  FittedMixture fit;
  const Index d = 2, K = 2;
  fit.weights = Vector::Constant(K, 0.5);
  fit.means = Matrix::Zero(d, K);
  fit.means(0, 1) = 1;
  fit.eigenvectors = {Matrix::Identity(d, d), Matrix::Identity(d, d)};
  fit.eigenvalues = Matrix::Constant(d, K, 0.25);
  fit.counts = {2, 2};
  fit.traces = Vector::Constant(K, 0.5);
  const fs::path header = scratch / "mixture.json";
  write_eigen_mixture(header.string(), fit, {{"image_shape", {1, 1, 2}}});
  auto text = nlohmann::json::parse(read(header));
  text["arrays"] = "arrays.npy";  // the name fuzz_eigen_mixture gives the arrays file
  const std::string arrays = read(scratch / "mixture.npy");
  put(dir, "valid", text.dump() + '\0' + arrays);
  text.erase("arrays_sha256");
  put(dir, "no_sha256", text.dump() + '\0' + arrays);
  put(dir, "truncated", text.dump() + '\0' + arrays.substr(0, arrays.size() - 16));
  text["dim"] = 3;
  put(dir, "wrong_dim", text.dump() + '\0' + arrays);
}

void studies(const fs::path& ini_dir, const fs::path& results_dir) {
  StudySpec spec;
  spec.data = {"eight_gaussians"};
  spec.sde = {"vp"};
  spec.axes["sampler"] = {"euler_maruyama", "ddim"};
  spec.set_axis("steps", std::vector<int>{10, 20});
  spec.blocks.clear();
  spec.seeds = 1;
  put(ini_dir, "small", spec.to_ini());
  put(ini_dir, "default", StudySpec().to_ini());
  put(ini_dir, "preset", "preset = gaussian\nsteps = 4,8\nseeds = 1\n");
  put(ini_dir, "unknown_key", "sampler = ddim\nno-such-key = 1\n");
  put(ini_dir, "bad_value", "steps = 0\n[section]\nsamples = -1\n");

  const StudySpec default_spec;
  nlohmann::ordered_json results;
  results["command"] = "scoresde study --out runs/default";
  results["context"] = nlohmann::ordered_json::object();
  results["sessions"] = nlohmann::ordered_json::array({{{"threads", 2}}});
  results["study"] = default_spec.to_json();
  results["inputs"] = nlohmann::ordered_json::object();
  results["skipped"] = nlohmann::ordered_json::array();
  results["columns"] = study_columns(default_spec.resolved_metrics());
  const auto runs = expand_study(default_spec);
  for (std::size_t i = 0; i < 2 && i < runs.size(); ++i) results["rows"].push_back(describe_run(runs[i]));
  put(results_dir, "default", results.dump(1));
  results["study"]["steps"] = "1,2";
  put(results_dir, "other_study", results.dump(1));
  put(results_dir, "minimal", R"({"study": {}, "rows": [{"run": "a", "w2": 1.5}]})");
  put(results_dir, "no_rows", R"({"study": {"threads": 1}})");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: fuzz_write_seeds CORPUS_DIR (tests/fuzz/corpus)\n";
    return 2;
  }
  const fs::path corpus = argv[1];
  const fs::path scratch = fs::temp_directory_path() / "scoresde-write-seeds";
  fs::create_directories(scratch);
  checkpoints(corpus / "checkpoint", scratch);
  eigen_mixtures(corpus / "eigen_mixture", scratch);
  studies(corpus / "study_ini", corpus / "results_json");
  fs::remove_all(scratch);
  return 0;
}
