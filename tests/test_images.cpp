// Image data and the exact 784-dimensional mixture (docs/images.md):
//   - IDX files written here, plain and gzipped, read back exactly; truncated and corrupt ones refused by name
//     (bad magic, wrong rank, short header, short data, trailing bytes, label/image count mismatch, gzip errors);
//   - fashion_mnist names, and the error naming the Debian package when the files are missing;
//   - image-shaped .npy arrays (n, H, W) and (n, C, H, W) read as flattened rows;
//   - on a slice of Fashion-MNIST (the first 300 test images, K = 2): the fit against a naive two-pass computation
//     written here, and `fit-mixture` against numpy (tests/data/check_fit_mixture.py);
//   - the 784-D exact score against central differences of log p_t at several t, with a step and tolerance derived
//     from bounds on the derivatives and on the rounding of log p_t;
//   - a mixture built from eigendecompositions against the same mixture built from covariances (small d), and the
//     header + .npy file round trip with its named errors.
#include <doctest/doctest.h>
#include <fmt/format.h>
#include <zlib.h>

#include <Eigen/Eigenvalues>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <numbers>
#include <random>
#include <set>

#include "cli_helpers.hpp"
#include "core/errors.hpp"
#include "core/npy.hpp"
#include "core/sde.hpp"
#include "experiments/metrics/fd_fmnist.hpp"
#include "experiments/metrics/metrics.hpp"
#include "models/datasets.hpp"
#include "models/gaussian_mixture.hpp"
#include "models/idx.hpp"
#include "models/image_mixture.hpp"
#include "models/score_factory.hpp"
#include "sampler_cases.hpp"

using namespace scoresde;
using namespace scoresde::test;
using scoresde::testing::all_sdes;

namespace {

constexpr double eps = std::numeric_limits<double>::epsilon();

std::string big_endian(std::uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8), static_cast<char>(v)};
}

// The bytes of an unsigned-byte IDX file with these dimensions and elements.
std::string idx_bytes(const std::vector<std::uint32_t>& dims, const std::vector<std::uint8_t>& data) {
  std::string out{0, 0, 8, static_cast<char>(dims.size())};
  for (const auto n : dims) out += big_endian(n);
  out.append(data.begin(), data.end());
  return out;
}

std::string write_gz(const TempDir& dir, const std::string& name, const std::string& bytes) {
  const std::string path = dir.file(name);
  gzFile f = gzopen(path.c_str(), "wb");
  REQUIRE(f != nullptr);
  REQUIRE(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())) == static_cast<int>(bytes.size()));
  REQUIRE(gzclose(f) == Z_OK);
  return path;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

template <class F>
void check_input_error(F&& f, const std::vector<std::string>& needles) {
  try {
    f();
    FAIL("expected an InputError");
  } catch (const InputError& e) {
    for (const auto& n : needles) check_contains(e.what(), n);
  }
}

// 3 images of 2 x 3 pixels with values 0, 10, 20, ...; labels 2, 0, 1.
std::vector<std::uint8_t> pixels() {
  std::vector<std::uint8_t> p(18);
  for (std::size_t i = 0; i < p.size(); ++i) p[i] = static_cast<std::uint8_t>(15 * i);
  return p;
}

bool have_fashion_mnist() {
  return std::filesystem::exists(fashion_mnist_images_file(true)) &&
         std::filesystem::exists(fashion_mnist_labels_file(true));
}

// The slice of the tests: the first 300 test images.
constexpr Index slice = 300;

LabelledImages fashion_slice() {
  LabelledImages all = load_fashion_mnist({true, std::nullopt});
  all.images.conservativeResize(Eigen::NoChange, slice);
  all.labels.resize(slice);
  return all;
}

// The fit of the slice's classes 0 and 1 with shrinkage 0.1 that the fit, score and precision tests share.
MixtureFitOptions slice_fit_options() {
  MixtureFitOptions o;
  o.components = 2;
  o.regularization = 0.1;
  return o;
}
FittedMixture slice_fit(const LabelledImages& data) {
  return fit_class_mixture(data.images, data.labels, slice_fit_options());
}

}  // namespace

TEST_CASE("IDX: images and labels read exactly, gzipped or not") {
  TempDir dir("idx");
  const auto images = write_gz(dir, "i.gz", idx_bytes({3, 2, 3}, pixels()));
  const auto labels = write_gz(dir, "l.gz", idx_bytes({3}, {2, 0, 1}));
  const LabelledImages r = read_idx_images(images, labels);
  REQUIRE(r.images.rows() == 6);
  REQUIRE(r.images.cols() == 3);
  CHECK(r.rows == 2);
  CHECK(r.columns == 3);
  CHECK(r.labels == std::vector<int>{2, 0, 1});
  for (Index j = 0; j < 3; ++j)
    for (Index i = 0; i < 6; ++i) CHECK(r.images(i, j) == (15.0 * static_cast<double>(6 * j + i)) / 127.5 - 1.0);
  // 0 and 255 map to the ends of [-1, 1] exactly.
  const auto ends = write_gz(dir, "e.gz", idx_bytes({1, 1, 2}, {0, 255}));
  const auto one = write_gz(dir, "o.gz", idx_bytes({1}, {0}));
  const LabelledImages e = read_idx_images(ends, one);
  CHECK(e.images(0, 0) == -1.0);
  CHECK(e.images(1, 0) == 1.0);
  // An uncompressed file passes through gzread unchanged.
  const auto plain = dir.write("plain.idx", idx_bytes({3}, {2, 0, 1}));
  CHECK(read_idx(plain, 1).data == std::vector<std::uint8_t>{2, 0, 1});
}

TEST_CASE("IDX: truncated and corrupt files are refused by name") {
  TempDir dir("idx");
  const auto labels = write_gz(dir, "l.gz", idx_bytes({3}, {2, 0, 1}));
  const auto check = [&](const std::string& name, const std::string& bytes, int rank,
                         const std::vector<std::string>& needles) {
    CAPTURE(name);
    const auto path = write_gz(dir, name, bytes);
    auto all = needles;
    all.push_back(path);
    check_input_error([&] { read_idx(path, rank); }, all);
  };
  std::string float_magic = idx_bytes({3}, {2, 0, 1});
  float_magic[2] = 0x0D;
  check("float.gz", float_magic, 1, {"bad magic number", "00 00 0d 01", "expected 00 00 08 01"});
  check("rank.gz", idx_bytes({3, 2, 3}, pixels()), 1, {"rank 3; expected rank 1"});
  check("header.gz", idx_bytes({3, 2, 3}, {}).substr(0, 9), 3, {"truncated IDX header"});
  check("short.gz", idx_bytes({3, 2, 3}, std::vector<std::uint8_t>(17)), 3,
        {"truncated IDX data", "3 x 2 x 3", "need 18 bytes, the file holds 17"});
  check("long.gz", idx_bytes({3}, {1, 2, 3, 4}), 1, {"1 bytes after the IDX data"});
  check("zero.gz", idx_bytes({0}, {}), 1, {"dimension 0 is 0"});
  check("tiny.gz", std::string("\0\0", 2), 1, {"shorter than the 4-byte magic number"});
  check_input_error([&] { read_idx(dir.file("absent.gz"), 1); }, {"absent.gz", "cannot open"});

  // Labels and images that disagree in number.
  const auto images = write_gz(dir, "i.gz", idx_bytes({3, 2, 3}, pixels()));
  const auto two = write_gz(dir, "two.gz", idx_bytes({2}, {0, 1}));
  check_input_error([&] { read_idx_images(images, two); }, {"two.gz", "2 labels for the 3 images", "i.gz"});

  // A gzip stream cut short, and one with a damaged body (deflate data or CRC error).
  const std::string gz = read_file(images);
  const auto cut = dir.write("cut.gz", gz.substr(0, gz.size() - 12));
  check_input_error([&] { read_idx(cut, 3); }, {"cut.gz", "gzip error"});
  std::string damaged = gz;
  for (std::size_t i = 12; i < damaged.size() - 8; ++i) damaged[i] = static_cast<char>(damaged[i] ^ 0x5A);
  const auto bad = dir.write("damaged.gz", damaged);
  check_input_error([&] { read_idx(bad, 3); }, {"damaged.gz", "gzip error"});
}

TEST_CASE("fashion_mnist names, and the Debian package named when the files are missing") {
  CHECK_FALSE(parse_fashion_mnist_name("eight_gaussians"));
  CHECK_FALSE(parse_fashion_mnist_name("fashion_mnist.npy"));
  const auto plain = parse_fashion_mnist_name("fashion_mnist");
  REQUIRE(plain);
  CHECK_FALSE(plain->test);
  CHECK_FALSE(plain->label);
  CHECK_FALSE(parse_fashion_mnist_name("fashion_mnist:train")->test);
  CHECK(parse_fashion_mnist_name("fashion_mnist:test")->test);
  CHECK(*parse_fashion_mnist_name("fashion_mnist:class=7")->label == 7);
  const auto both = parse_fashion_mnist_name("fashion_mnist:test:class=0");
  CHECK(both->test);
  CHECK(*both->label == 0);
  for (const std::string bad : {"fashion_mnist:class=10", "fashion_mnist:valid", "fashion_mnist:class=3:test",
                                "fashion_mnist:test:test", "fashion_mnist:class=-1", "fashion_mnist:"}) {
    CAPTURE(bad);
    CHECK_THROWS_AS(parse_fashion_mnist_name(bad), ConfigError);
    CHECK_FALSE(is_fashion_mnist(bad));
  }
  CHECK(is_builtin_training_data("fashion_mnist:test:class=4"));
  CHECK(data_source_file("fashion_mnist:class=4").empty());
  CHECK_FALSE(has_exact_mixture("fashion_mnist"));
  // Where an exact density is needed, the error says how to get one.
  {
    TempDir out("fmnist-sample");
    const Result r = run({"sample", "--data", "fashion_mnist", "-n", "2", "--out", out.file("x.npy")});
    CHECK(r.code == 2);
    check_contains(r.err, "scoresde fit-mixture --data fashion_mnist");
    CHECK(out.entries().empty());
  }

  TempDir dir("fmnist-missing");
  ::setenv("SCORESDE_FASHION_MNIST_DIR", dir.file("nowhere").c_str(), 1);
  check_input_error([] { load_training_data("fashion_mnist", 1, 0, 0); },
                    {"dataset-fashion-mnist", "train-images-idx3-ubyte.gz", "is missing"});
  const Result r = run({"train", "--data", "fashion_mnist:test", "--out", dir.file("m.ckpt")});
  CHECK(r.code == 2);
  check_contains(r.err, "dataset-fashion-mnist");
  ::unsetenv("SCORESDE_FASHION_MNIST_DIR");
}

TEST_CASE("image arrays in .npy: (n, H, W) and (n, C, H, W) flattened row-major") {
  TempDir dir("npy-images");
  const auto npy = [&](const std::string& name, const std::string& shape, const std::vector<double>& values) {
    const std::string dict = "{'descr': '<f8', 'fortran_order': False, 'shape': " + shape + ", }";
    std::string h = dict + std::string(128 - 10 - dict.size() - 1, ' ') + "\n";
    std::string bytes = std::string("\x93NUMPY\x01\x00", 8);
    bytes += static_cast<char>(h.size() & 0xFF);
    bytes += static_cast<char>(h.size() >> 8);
    bytes += h;
    bytes.append(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(double));
    return dir.write(name, bytes);
  };
  std::vector<double> v(24);
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<double>(i);
  const Matrix hw = read_samples_npy(npy("hw.npy", "(2, 3, 4)", v));
  const Matrix chw = read_samples_npy(npy("chw.npy", "(2, 3, 2, 2)", v));
  const Matrix flat = read_samples_npy(npy("flat.npy", "(2, 12)", v));
  CHECK(hw.rows() == 12);
  CHECK(hw.cols() == 2);
  CHECK(hw == flat);
  CHECK(chw == flat);
  CHECK(flat(5, 1) == 17.0);  // image 1, pixel 5
  CHECK(load_training_data(dir.file("chw.npy"), 1, 0, 12) == flat);
  check_input_error([&] { read_samples_npy(npy("five.npy", "(1, 2, 3, 2, 2)", v)); }, {"five.npy", "(n, C, H, W)"});
}

TEST_CASE("fashion_mnist data: splits, classes, scaling" * doctest::skip(!have_fashion_mnist())) {
  const Matrix test = load_training_data("fashion_mnist:test", 1, 0, 0);
  CHECK(test.rows() == 784);
  CHECK(test.cols() == 10000);
  CHECK(test.minCoeff() == -1.0);
  CHECK(test.maxCoeff() == 1.0);
  CHECK_THROWS_AS(load_training_data("fashion_mnist:test", 1, 0, 3), ConfigError);
  Index total = 0;
  for (int k = 0; k < 10; ++k) {
    const Matrix c = load_training_data(fmt::format("fashion_mnist:test:class={}", k), 1, 0, 784);
    CHECK(c.cols() == 1000);  // the test split is balanced
    total += c.cols();
  }
  CHECK(total == 10000);
  // Every value is v / 127.5 - 1 for an integer v in 0..255.
  const Eigen::ArrayXXd v = (test.array() + 1.0) * 127.5;
  CHECK((v - v.round()).abs().maxCoeff() <= 1e-12);
}

TEST_CASE("the class mixture fit against a naive two-pass computation" * doctest::skip(!have_fashion_mnist())) {
  const LabelledImages data = fashion_slice();
  const MixtureFitOptions o = slice_fit_options();
  const FittedMixture fit = fit_class_mixture(data.images, data.labels, o);
  const Index d = 784;
  Index n0 = 0, n1 = 0;
  for (const int l : data.labels) {
    n0 += l == 0 ? 1 : 0;
    n1 += l == 1 ? 1 : 0;
  }
  CHECK(fit.counts == std::vector<Index>{n0, n1});
  CHECK(std::abs(fit.weights(0) - static_cast<double>(n0) / static_cast<double>(n0 + n1)) <= 4 * eps);
  for (int k = 0; k < 2; ++k) {
    CAPTURE(k);
    // Mean, then covariance, entry by entry in long double.
    std::vector<long double> mean(d, 0.0L);
    const Index nk = k == 0 ? n0 : n1;
    for (Index j = 0; j < slice; ++j)
      if (data.labels[j] == k)
        for (Index i = 0; i < d; ++i) mean[i] += data.images(i, j);
    for (auto& m : mean) m /= static_cast<long double>(nk);
    Matrix S(d, d);
    for (Index a = 0; a < d; ++a)
      for (Index b = 0; b <= a; ++b) {
        long double s = 0;
        for (Index j = 0; j < slice; ++j)
          if (data.labels[j] == k) s += (data.images(a, j) - mean[a]) * (data.images(b, j) - mean[b]);
        S(a, b) = S(b, a) = static_cast<double>(s / static_cast<long double>(nk));
      }
    double mean_error = 0;
    for (Index i = 0; i < d; ++i)
      mean_error = std::max(mean_error, std::abs(static_cast<double>(mean[i]) - fit.means(i, k)));
    CHECK(mean_error <= 8 * eps);
    const Matrix expected = (1 - o.regularization) * S + o.regularization * S.trace() / d * Matrix::Identity(d, d);
    const Matrix& U = fit.eigenvectors[k];
    const Matrix rebuilt = U * fit.eigenvalues.col(k).asDiagonal() * U.transpose();
    // Backward error of the symmetric eigensolver and the reconstruction: a few d eps |S|_F.
    const double bound = 8 * d * eps * expected.norm();
    CHECK((rebuilt - expected).cwiseAbs().maxCoeff() <= bound);
    CHECK(std::abs(fit.traces(k) - S.trace()) <= d * eps * S.trace());
    // The smallest variance is lambda tr(S)/d: the border pixels are constant in a class of this slice.
    CHECK(fit.eigenvalues.col(k).minCoeff() >= o.regularization * S.trace() / d * (1 - 8 * d * eps));
  }
}

TEST_CASE("fit-mixture against numpy; the header + .npy file is a mixture file" *
          doctest::skip(!have_fashion_mnist() || !std::filesystem::exists("/usr/bin/python3"))) {
  TempDir dir("fit-mixture");
  const std::string out = dir.file("fm2.json");
  const Result r = run({"fit-mixture", "--data", "fashion_mnist:test", "--components", "2", "--max-images", "300",
                        "--regularization", "0.2", "--out", out});
  INFO("stderr: " << r.err);
  REQUIRE(r.code == 0);
  CHECK(dir.entries() == std::set<std::string>{"fm2.json", "fm2.npy"});
  const char* source = std::getenv("SCORESDE_SOURCE_DIR");
  REQUIRE(source != nullptr);
  const std::string command =
      fmt::format("/usr/bin/python3 {}/tests/data/check_fit_mixture.py {} {} {} 300 2 0.2 2>&1", source, out,
                  fashion_mnist_images_file(true), fashion_mnist_labels_file(true));
  FILE* pipe = ::popen(command.c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::string printed;
  char buffer[512];
  while (std::fgets(buffer, sizeof buffer, pipe)) printed += buffer;
  const int status = ::pclose(pipe);
  INFO("check_fit_mixture.py: " << printed);
  CHECK(status == 0);

  // The file loads as a mixture, equal to the in-memory fit; the header records the fit.
  const auto loaded = load_data(out, 784);
  LabelledImages data = fashion_slice();
  MixtureFitOptions o;
  o.components = 2;
  o.regularization = 0.2;
  const GaussianMixture direct = to_mixture(fit_class_mixture(data.images, data.labels, o));
  Vector a, b;
  const Matrix x = data.images.leftCols(20);
  loaded->evaluate(0.7, 0.5, x, &a, nullptr, nullptr);
  direct.evaluate(0.7, 0.5, x, &b, nullptr, nullptr);
  CHECK(a == b);
  const auto header = nlohmann::json::parse(read_file(out));
  CHECK(header["format"] == eigen_mixture_format);
  CHECK(header["fit"]["images"] == 300);
  CHECK(header["fit"]["options"]["regularization"] == 0.2);
  CHECK(header["image_shape"] == nlohmann::json::array({1, 28, 28}));

  // Named errors: bad options, a missing, truncated, altered or foreign arrays file.
  const auto rejected = [&](const std::vector<std::string>& args, const std::vector<std::string>& needles) {
    const Result e = run(args);
    CHECK(e.code == 2);
    for (const auto& n : needles) check_contains(e.err, n);
  };
  rejected({"fit-mixture", "--components", "11", "--out", dir.file("x.json")}, {"--components = 11", "[1, 10]"});
  rejected({"fit-mixture", "--regularization", "0", "--out", dir.file("x.json")}, {"--regularization = 0"});
  rejected({"fit-mixture", "--data", "eight_gaussians", "--out", dir.file("x.json")}, {"--data = eight_gaussians"});
  rejected({"fit-mixture", "--data", "fashion_mnist:class=2", "--out", dir.file("x.json")},
           {"one component per class"});
  rejected({"fit-mixture", "--out", dir.file("x.npz")}, {"--out", "must end in .json"});
  const std::string arrays = read_file(dir.file("fm2.npy"));
  const auto header_copy = [&](const std::string& name) {
    auto h = header;
    h["arrays"] = name + ".npy";
    return dir.write(name + ".json", h.dump());
  };
  const auto missing = header_copy("missing");
  check_input_error([&] { load_data(missing, 0); }, {"missing.json", "missing.npy", "cannot be opened"});
  const auto truncated = header_copy("truncated");
  dir.write("truncated.npy", arrays.substr(0, arrays.size() - 8));
  check_input_error([&] { load_data(truncated, 0); }, {"truncated.npy", "truncated"});
  const auto altered = header_copy("altered");
  std::string changed = arrays;
  changed[arrays.size() / 2] = static_cast<char>(changed[arrays.size() / 2] ^ 1);
  dir.write("altered.npy", changed);
  check_input_error([&] { load_data(altered, 0); }, {"altered.npy", "SHA-256"});
  auto other = header;
  other["dim"] = 783;
  const auto foreign = dir.write("foreign.json", other.dump());
  check_input_error([&] { load_data(foreign, 0); }, {"fm2.npy", "shape (2, 785, 783)"});
  auto unknown = header;
  unknown["format"] = "scoresde-mixture-eig-9";
  const auto future = dir.write("future.json", unknown.dump());
  check_input_error([&] { load_data(future, 0); }, {"future.json", "\"format\"", "scoresde-mixture-eig-1"});
  // The small-JSON format is unchanged.
  const auto small = dir.write("small.json", R"({"weights": [1], "means": [[0, 1]], "stds": [2]})");
  CHECK(load_data(small, 2)->components() == 1);
}

TEST_CASE("a mixture from eigendecompositions equals the same mixture from covariances (small d)") {
  std::mt19937_64 gen(5);
  std::normal_distribution<double> normal;
  const Index d = 6, K = 3;
  Matrix means(d, K);
  std::vector<Matrix> cov, vectors;
  Matrix values(d, K);
  for (Index k = 0; k < K; ++k) {
    Matrix A(d, d);
    for (Index i = 0; i < d * d; ++i) A.data()[i] = normal(gen);
    for (Index i = 0; i < d; ++i) means(i, k) = 2 * normal(gen);
    cov.push_back(A * A.transpose() / d + 0.1 * Matrix::Identity(d, d));
    const Eigen::SelfAdjointEigenSolver<Matrix> eig(cov.back());
    vectors.push_back(eig.eigenvectors());
    values.col(k) = eig.eigenvalues();
  }
  const Vector w = Vector::LinSpaced(K, 1.0, 2.0);
  const GaussianMixture a(w, means, cov);
  const GaussianMixture b = GaussianMixture::from_eigendecomposition(w, means, vectors, values);
  Matrix x(d, 8);
  for (Index i = 0; i < x.size(); ++i) x.data()[i] = 2 * normal(gen);
  for (const double alpha : {1.0, 0.6, 0.05}) {
    const double sigma = std::sqrt(1 - alpha * alpha) + 1e-3;
    Vector la, lb, pa, pb;
    Matrix sa, sb;
    a.evaluate(alpha, sigma, x, &la, &sa, &pa);
    b.evaluate(alpha, sigma, x, &lb, &sb, &pb);
    // Two eigendecompositions of one matrix agree to O(d eps cond) in what they define; the outputs to a few
    // hundred eps of their size.
    CHECK((la - lb).cwiseAbs().maxCoeff() <= 256 * eps * (1 + la.cwiseAbs().maxCoeff()));
    CHECK((sa - sb).cwiseAbs().maxCoeff() <= 256 * eps * (1 + sa.cwiseAbs().maxCoeff()));
    CHECK((pa - pb).cwiseAbs().maxCoeff() <= 256 * eps * (1 + pa.cwiseAbs().maxCoeff()));
  }
  // Not orthonormal, or not positive: refused.
  auto bent = vectors;
  bent[1](0, 0) += 1e-6;
  CHECK_THROWS_AS(GaussianMixture::from_eigendecomposition(w, means, bent, values), ConfigError);
  Matrix negative = values;
  negative(0, 2) = 0;
  CHECK_THROWS_AS(GaussianMixture::from_eigendecomposition(w, means, vectors, negative), ConfigError);
}

TEST_CASE("the 784-D exact score = central differences of log p_t at several t" *
          doctest::skip(!have_fashion_mnist())) {
  const LabelledImages data = fashion_slice();
  const FittedMixture fit = slice_fit(data);
  GaussianMixture float64 = to_mixture(fit);
  CHECK(float64.score_precision() == GaussianMixture::ScorePrecision::float32);  // the default at d = 784
  float64.set_score_precision(GaussianMixture::ScorePrecision::float64);
  const auto mixture = std::make_shared<const GaussianMixture>(std::move(float64));
  const Index d = 784, K = 2;
  std::mt19937_64 gen(11);
  std::normal_distribution<double> normal;
  for (const auto& so : all_sdes()) {
    const auto sde = make_sde(so);
    const MixtureScore model(mixture, *sde);
    for (const double t : {sde->default_eps(), 0.05, 0.3, 1.0}) {
      const double alpha = sde->alpha(t), sigma = sde->sigma(t);
      // A diffused image of each class, and a point half way between the two diffused means.
      Matrix x(d, 3);
      for (Index j = 0; j < d; ++j) {
        x(j, 0) = alpha * data.images(j, 0) + sigma * normal(gen);
        x(j, 1) = alpha * data.images(j, 1) + sigma * normal(gen);
        x(j, 2) = 0.5 * alpha * (fit.means(j, 0) + fit.means(j, 1)) + 0.1 * sigma * normal(gen);
      }
      Matrix score(d, 3);
      model.score(x, Vector::Constant(3, t), score);
      for (Index p = 0; p < 3; ++p) {
        CAPTURE(sde->name());
        CAPTURE(t);
        CAPTURE(p);
        // Per component, in its eigenbasis: y = U^T (x - alpha mu), c = alpha^2 l + sigma^2, z = y / c, s_k = -U z.
        // log p_t's rounding: each of the d projections y_i errs by at most d eps |x - alpha mu| (a length-d dot
        // product of a unit row), which moves the quadratic form sum y_i^2 / c_i by 2 |z|_1 d eps |x - alpha mu|;
        // the sums of d terms (quadratic form, log det) err by d eps times their absolute sums.
        double delta = 0, B = 0;
        Vector A = Vector::Zero(d);
        for (Index k = 0; k < K; ++k) {
          const Vector r = x.col(p) - alpha * fit.means.col(k);
          const Vector c = (alpha * alpha * fit.eigenvalues.col(k)).array() + sigma * sigma;
          const Vector z = (fit.eigenvectors[k].transpose() * r).cwiseQuotient(c);
          const Vector s = -(fit.eigenvectors[k] * z);
          const double quadratic = z.dot(c.cwiseProduct(z));
          delta = std::max(delta, d * eps *
                                      (2 * z.cwiseAbs().sum() * r.norm() + quadratic + c.array().log().abs().sum() +
                                       d * std::log(2 * std::numbers::pi)));
          B = std::max(B, c.cwiseInverse().maxCoeff());
          A = A.cwiseMax(s.cwiseAbs());
        }
        // Central differences of all d coordinates in one batch.
        Matrix xs(d, 2 * d);
        xs.leftCols(d).colwise() = x.col(p);
        xs.rightCols(d).colwise() = x.col(p);
        Vector h(d), tol(d);
        for (Index i = 0; i < d; ++i) {
          // Step and tolerance as in test_mixture.cpp's fd_step: |d3/dtau3 log p| <= 8 A^3 + 6 A B on the stencil
          // with A = max_k |s_k,i| + B h_max; h minimises h^2 M / 6 + delta / h.
          double h_max = 1e-3;
          for (;;) {
            const double a = A(i) + B * h_max, M = 8 * a * a * a + 6 * a * B;
            h(i) = std::cbrt(3 * delta / M);
            tol(i) = h(i) * h(i) * M / 6 + delta / h(i);
            if (h(i) <= h_max) break;
            h_max = h(i);
          }
          xs(i, i) += h(i);
          xs(i, d + i) -= h(i);
        }
        Vector lp;
        model.log_density(xs, t, lp);
        double worst = 0, largest = 0;
        for (Index i = 0; i < d; ++i) {
          const double fd = (lp(i) - lp(d + i)) / (2 * h(i));
          worst = std::max(worst, std::abs(fd - score(i, p)) / tol(i));
          largest = std::max(largest, std::abs(score(i, p)));
        }
        INFO("largest |score_i| " << largest << ", largest tolerance " << tol.maxCoeff());
        CHECK(worst <= 1.0);
        // The check has teeth: the tolerances are far below the score's size.
        CHECK(tol.maxCoeff() <= 1e-2 * largest);
      }
    }
  }
}

TEST_CASE("the float32 score at d = 784 against the float64 score, within a derived rounding bound" *
          doctest::skip(!have_fashion_mnist())) {
  const LabelledImages data = fashion_slice();
  const FittedMixture fit = slice_fit(data);
  const GaussianMixture fast = to_mixture(fit);
  GaussianMixture exact = to_mixture(fit);
  exact.set_score_precision(GaussianMixture::ScorePrecision::float64);
  REQUIRE(fast.score_precision() == GaussianMixture::ScorePrecision::float32);
  const Index d = 784, K = 2, n = 6;
  const double u = std::numeric_limits<float>::epsilon();
  std::mt19937_64 gen(12);
  std::normal_distribution<double> normal;
  for (const double alpha : {0.9995, 0.9, 0.5, 0.05}) {
    CAPTURE(alpha);
    const double sigma = std::sqrt(1 - alpha * alpha);
    Matrix x(d, n);
    for (Index j = 0; j < n; ++j)
      for (Index i = 0; i < d; ++i) x(i, j) = alpha * data.images(i, 10 + j) + sigma * normal(gen);
    Matrix s32(d, n), s64(d, n);
    fast.score_into(alpha, sigma, x, s32);
    exact.score_into(alpha, sigma, x, s64);
    for (Index j = 0; j < n; ++j) {
      CAPTURE(j);
      // Worst-case rounding of the float32 path (float64 elsewhere), first order in u = 2^-23:
      //   U^T x: each entry a length-d product of a unit row with x (and U, x rounded to float): e_y = (d + 2) u |x|;
      //   z_k = y / c: |dz_k|_2 <= e_y |1/c_k|_2, then rounded: + u |z_k|_2;
      //   logit_k = -sum y z / 2 + const: |dl_k| <= D_k = e_y |z_k|_1;
      //   gamma_k: dgamma_k = gamma_k sum_l gamma_l (dl_k - dl_l), so |dgamma_k| <= gamma_k ((1 - gamma_k) D_k +
      //   sum_{l != k} gamma_l D_l);
      //   the back-projection, a length-(K d) product per entry: K d u |gamma z|_2 + u |score| (the cast).
      std::vector<Vector> z(K);
      Vector logit(K), D(K), dz(K);
      for (Index k = 0; k < K; ++k) {
        const Vector c = ((alpha * alpha) * fit.eigenvalues.col(k)).array() + sigma * sigma;
        const double e_y = (d + 2) * u * x.col(j).norm();
        z[k] = (fit.eigenvectors[k].transpose() * (x.col(j) - alpha * fit.means.col(k))).cwiseQuotient(c);
        logit(k) = std::log(fit.weights(k)) - 0.5 * (z[k].dot(c.cwiseProduct(z[k])) + c.array().log().sum());
        D(k) = e_y * z[k].cwiseAbs().sum();
        dz(k) = e_y * c.cwiseInverse().norm() + u * z[k].norm();
      }
      const Vector gamma = (logit.array() - logit.maxCoeff()).exp() / (logit.array() - logit.maxCoeff()).exp().sum();
      double bound = u * s64.col(j).cwiseAbs().maxCoeff(), weighted = 0;
      for (Index k = 0; k < K; ++k) {
        double others = 0;
        for (Index l = 0; l < K; ++l)
          if (l != k) others += gamma(l) * D(l);
        const double dgamma = gamma(k) * ((1 - gamma(k)) * D(k) + others);
        bound += gamma(k) * dz(k) + dgamma * z[k].norm();
        weighted += gamma(k) * gamma(k) * z[k].squaredNorm();
      }
      bound += K * d * u * std::sqrt(weighted);
      const double error = (s32.col(j) - s64.col(j)).cwiseAbs().maxCoeff();
      INFO("error " << error << ", bound " << bound << ", |score| " << s64.col(j).cwiseAbs().maxCoeff());
      CHECK(error <= bound);
      CHECK(error > 0);  // the float32 path was taken
      // The bound is worst case (rounding errors all of one sign, d u per dot product), so it is far above the
      // errors seen here (1e-6 to 1e-5 of the score): from a few per cent of the score near the data to above the
      // score where the components compete (alpha 0.5 and below). It guards against gross errors (a wrong
      // component, a wrong offset), not against a loss of a few digits; docs/images.md.
    }
  }
}

TEST_CASE(
    "study --preset fashion-mnist: the exact score and, with LibTorch, the committed U-Net on the same cells in "
    "one report" *
    doctest::skip(!have_fashion_mnist())) {
  TempDir dir("fmnist-preset");
  const std::string out = std::filesystem::path(dir.file("x")).parent_path().string();
  // The preset's mixture, a small fit in its place (the preset fits the full one when the file is missing).
  const Result fit = run({"fit-mixture", "--data", "fashion_mnist:test", "--components", "2", "--max-images", "300",
                          "--out", dir.file("fashion_mnist10.json")});
  REQUIRE_MESSAGE(fit.code == 0, fit.err);
  const std::string unet = find_fmnist_asset("unet.pt");
  const bool learned = torchscript_backend_built() && !unet.empty();
  const Result listed = run({"study", "--preset", "fashion-mnist", "--out", out, "--dry-run"});
  REQUIRE_MESSAGE(listed.code == 0, listed.err);
  // Run ids start with the score only where a study has two scores (the learned-score block).
  check_contains(listed.out, learned ? "exact.vp.sa_solver_logsnr_o3.n50.s0" : "\n  vp.sa_solver_logsnr_o3.n50.s0");
  if (learned) {
    // The block: three samplers at 10 and 20 steps with both scores, 1000 images, and a floor of that size.
    check_contains(listed.out, "exact.size1000.s0 (1000 samples)");
    check_contains(listed.out, "exact.vp.dpmpp_2m_sde_logsnr.n20.size1000.s0 (1000 samples)");
    check_contains(listed.out, "unet.vp.ddim_logsnr.n10.size1000.s0 (1000 samples)");
  } else {
    check_contains(listed.out, "without the learned-score rows");
  }
  CHECK(run({"study", "--preset", "fashion-mnist", "--out", out, "--dry-run", "--blocks", ""}).out.find("unet.") ==
        std::string::npos);
  if (!learned) return;

  // A small run of the same shape: both scores on one cell of 8 images, a report with them side by side.
  const Result study = run({"study", "--preset", "fashion-mnist", "--out", out, "--sampler", "ddim", "--steps", "2",
                            "-n", "12", "--metrics", "bpd", "--blocks",
                            fmt::format("score=exact,{}; samples=8; sampler=dpmpp_2m; steps=2", unet), "--quiet"});
  REQUIRE_MESSAGE(study.code == 0, study.err);
  const auto rows = nlohmann::json::parse(read_file(dir.file("results.json")))["rows"];
  std::set<std::string> ids;
  for (const auto& row : rows) {
    ids.insert(row["run"].get<std::string>());
    CHECK(row["status"] == "ok");
  }
  CHECK(ids == std::set<std::string>{"exact.s0", "exact.size8.s0", "exact.vp.ddim_logsnr.n2.s0",
                                     "exact.vp.dpmpp_2m_logsnr.n2.size8.s0", "unet.vp.dpmpp_2m_logsnr.n2.size8.s0"});
  if (!std::filesystem::exists("/usr/bin/python3")) return;
  const Result report = run({"report", out});
  REQUIRE_MESSAGE(report.code == 0, report.err);
  check_contains(read_file(dir.file("report.md")), "## Exact and learned scores side by side");
  CHECK(std::filesystem::exists(dir.file("figures/side_by_side_fashion_mnist10_n8_vp.png")));
}
