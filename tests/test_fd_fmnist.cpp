// fd_fmnist (experiments/metrics/fd_fmnist.hpp) against exact and independent answers:
//   - the Frechet distance of two Gaussians with commuting covariances against its closed form
//     |m1 - m2|^2 + sum_i (sqrt(a_i) - sqrt(b_i))^2, full rank and singular;
//   - on random feature sets against numpy + scipy.linalg.sqrtm of the non-symmetric product S_x S_y (a fixture of
//     tests/data/make_fd_fmnist_fixtures.py, an algorithm other than ours);
//   - the classifier's logits and features against PyTorch's float64 forward pass of the same weights;
//   - the bootstrap standard error against the spread of the distance over independent sample sets, and its
//     independence of the thread count;
//   - the test images against themselves (distance 0 up to rounding), the command line, and IDX files that are
//     truncated, corrupted or not IDX at all (named errors).
#include <doctest/doctest.h>

#include <fmt/format.h>
#include <zlib.h>
#include <Eigen/QR>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli_helpers.hpp"
#include "core/errors.hpp"
#include "core/noise.hpp"
#include "core/npy.hpp"
#include "experiments/metrics/fd_fmnist.hpp"

using namespace scoresde;
namespace fs = std::filesystem;
using scoresde::test::check_contains;
using scoresde::test::run;
using scoresde::test::TempDir;

namespace {

constexpr double eps = std::numeric_limits<double>::epsilon();

std::string fixture(const std::string& name) {
  const char* dir = std::getenv("SCORESDE_FD_FMNIST_DIR");
  REQUIRE_MESSAGE(dir != nullptr, "SCORESDE_FD_FMNIST_DIR: set by ctest (tests/CMakeLists.txt)");
  return (fs::path(dir) / name).string();
}

std::string classifier_path() {
  const char* dir = std::getenv("SCORESDE_SOURCE_DIR");
  REQUIRE_MESSAGE(dir != nullptr, "SCORESDE_SOURCE_DIR: set by ctest (tests/CMakeLists.txt)");
  return (fs::path(dir) / "assets" / "fashion_mnist" / "classifier.npz").string();
}

Matrix normals(std::uint64_t seed, Index rows, Index cols) {
  Matrix z(rows, cols);
  CounterRng(seed, NoisePurpose::data).normal_columns(0, 0, 0, z);
  return z;
}

// A random orthogonal matrix (Q of the QR decomposition of a Gaussian matrix).
Matrix orthogonal(std::uint64_t seed, Index d) {
  return Eigen::HouseholderQR<Matrix>(normals(seed, d, d)).householderQ();
}

template <class E>
void check_error(const std::function<void()>& f, std::initializer_list<std::string> needles) {
  try {
    f();
    FAIL("no error");
  } catch (const E& e) {
    for (const auto& n : needles) check_contains(e.what(), n);
  }
}

std::string idx_bytes(std::uint32_t n, std::uint32_t rows = 28, std::uint32_t cols = 28) {
  std::string s = {0, 0, 8, 3};
  for (const std::uint32_t v : {n, rows, cols})
    for (int shift = 24; shift >= 0; shift -= 8) s.push_back(static_cast<char>((v >> shift) & 0xFF));
  for (std::uint32_t i = 0; i < n * rows * cols; ++i) s.push_back(static_cast<char>((i * 7) % 256));
  return s;
}

void write_gz(const std::string& path, const std::string& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  REQUIRE(f != nullptr);
  REQUIRE(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())) == static_cast<int>(bytes.size()));
  gzclose(f);
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

}  // namespace

TEST_CASE("Frechet distance of Gaussians with commuting covariances: the closed form") {
  // S1 = Q diag(a) Q^T, S2 = Q diag(b) Q^T commute, so (S2^{1/2} S1 S2^{1/2})^{1/2} = Q diag(sqrt(a b)) Q^T and
  // FD = |m1 - m2|^2 + sum_i (sqrt(a_i) - sqrt(b_i))^2.
  const Index d = 6;
  const Matrix q = orthogonal(3, d);
  const Vector m1 = normals(4, d, 1), m2 = normals(5, d, 1);
  auto fd_of = [&](const Vector& a, const Vector& b) {
    const Matrix s1 = q * a.asDiagonal() * q.transpose(), s2 = q * b.asDiagonal() * q.transpose();
    return frechet_to_reference(m1, s1, frechet_reference(m2, s2));
  };
  auto closed_form = [&](const Vector& a, const Vector& b) {
    double sum = (m1 - m2).squaredNorm();
    for (Index i = 0; i < d; ++i) sum += std::pow(std::sqrt(a(i)) - std::sqrt(b(i)), 2);
    return sum;
  };
  SUBCASE("full rank") {
    Vector a(d), b(d);
    a << 4, 1, 0.25, 0.5, 2, 9;
    b << 1, 1, 1, 3, 0.1, 0.5;
    // Eigenvalue errors of a few eps |S| (|S| <= 9), square roots of values >= 0.1: relative error below 1e-12.
    CHECK(std::abs(fd_of(a, b) - closed_form(a, b)) <= 1e-12 * closed_form(a, b));
  }
  SUBCASE("singular covariances (zero eigenvalues, as dead ReLU features give)") {
    Vector a(d), b(d);
    a << 4, 1, 0.25, 0, 2, 0;
    b << 1, 0, 1, 3, 0, 0;
    // A zero eigenvalue is computed as +-c eps |S| and its square root is then sqrt(c eps |S|): with c <= 16 and
    // |S| <= 4, each of the d cross terms is off by at most 2 sqrt(4 * 16 eps * 4) ~ 5e-7.
    const double bound = 2.0 * d * std::sqrt(4.0 * 16.0 * eps * 4.0);
    CHECK(std::abs(fd_of(a, b) - closed_form(a, b)) <= bound);
  }
  SUBCASE("identical Gaussians: 0") {
    Vector a(d);
    a << 4, 1, 0.25, 0.5, 2, 9;
    const Matrix s = q * a.asDiagonal() * q.transpose();
    CHECK(frechet_to_reference(m1, s, frechet_reference(m1, s)) <= 1e-12 * s.trace());
  }
}

TEST_CASE("Frechet distance of feature sets: against numpy and scipy.linalg.sqrtm") {
  const Matrix x = read_samples_npy(fixture("feature_x.npy")), y = read_samples_npy(fixture("feature_y.npy"));
  std::ifstream in(fixture("fd_scipy.json"));
  const double expected = nlohmann::json::parse(in)["fd"].get<double>();
  const auto reference = frechet_reference(y);
  const Vector mean = x.rowwise().mean();
  const Matrix centred = x.colwise() - mean;
  const Matrix cov = centred * centred.transpose() / static_cast<double>(x.cols() - 1);
  // Both are backward stable on 16 x 16 matrices with condition numbers below 1e3: relative agreement 1e-10.
  CHECK(std::abs(frechet_to_reference(mean, cov, reference) - expected) <= 1e-10 * expected);
  // The bootstrap function returns the same point value.
  const MetricValue b = frechet_bootstrap(x, reference, 20, 0);
  CHECK(std::abs(b.value - expected) <= 1e-10 * expected);
}

TEST_CASE("the classifier's logits and features: against PyTorch") {
  const FmnistClassifier c = load_fmnist_classifier(classifier_path());
  const Matrix images = read_samples_npy(fixture("images.npy"));
  const Matrix logits = read_samples_npy(fixture("torch_logits.npy"));
  const Matrix features = read_samples_npy(fixture("torch_features.npy"));
  REQUIRE(images.rows() == fmnist_pixels);
  // Both in float64 from the same float32 weights; sums of 784 products in another order: 1e-12 relative.
  CHECK((c.logits(images) - logits).cwiseAbs().maxCoeff() <= 1e-12 * logits.cwiseAbs().maxCoeff());
  CHECK((c.features(images) - features).cwiseAbs().maxCoeff() <= 1e-12 * features.cwiseAbs().maxCoeff());
  CHECK(c.features(images, 1) == c.features(images, 2));
  check_error<InputError>([&] { c.features(Matrix::Zero(10, 3)); }, {"28 x 28", "have 10"});
}

TEST_CASE("the bootstrap standard error: the spread of the distance over independent sample sets") {
  // Samples N(mu, diag(v)) in d = 4 against the reference N(0, I): R independent sets of n points give the true
  // standard deviation of the distance (to a relative 1/sqrt(2 (R - 1))), which the bootstrap's standard error,
  // averaged over S sets, must match within 4 combined standard errors (plus the bootstrap's O(1/n) bias, below
  // 2% at n = 400 for this smooth statistic).
  const Index d = 4, n = 400, R = 400, S = 25;
  const auto reference = frechet_reference(Vector::Zero(d), Matrix::Identity(d, d));
  Vector mu(d), sd(d);
  mu << 0.5, -0.3, 0.2, 0.0;
  sd << 1.5, 0.7, 1.0, 1.2;
  Eigen::ArrayXd fd(R), se(S);
  for (Index r = 0; r < R; ++r) {
    const Matrix x = (sd.asDiagonal() * normals(100 + r, d, n)).colwise() + mu;
    if (r < S) {
      const MetricValue v = frechet_bootstrap(x, reference, 100, r);
      fd(r) = v.value;
      se(r) = v.std_error;
    } else {
      const Vector m = x.rowwise().mean();
      const Matrix c = (x.colwise() - m) * (x.colwise() - m).transpose() / double(n - 1);
      fd(r) = frechet_to_reference(m, c, reference);
    }
  }
  const double truth = std::sqrt((fd - fd.mean()).square().sum() / double(R - 1));
  const double mean_se = se.mean();
  const double se_spread = std::sqrt((se - mean_se).square().sum() / double(S - 1)) / std::sqrt(double(S));
  const double tolerance = 4.0 * std::hypot(truth / std::sqrt(2.0 * (R - 1)), se_spread) + 0.02 * truth;
  INFO("true SD " << truth << ", mean bootstrap SE " << mean_se << ", tolerance " << tolerance);
  CHECK(std::abs(mean_se - truth) <= tolerance);

  const Matrix x = normals(7, d, 300);
  const MetricValue one = frechet_bootstrap(x, reference, 30, 9, 1), two = frechet_bootstrap(x, reference, 30, 9, 2);
  CHECK(one.value == two.value);
  CHECK(one.std_error == two.std_error);
  CHECK(frechet_bootstrap(x, reference, 30, 10).std_error != one.std_error);
  check_error<ConfigError>([&] { frechet_bootstrap(x, reference, 1, 0); }, {"--fd-replicates = 1"});
}

TEST_CASE("fd_fmnist: the test images against themselves, and through evaluate") {
  const std::string data_dir = fmnist_default_data_dir;
  if (!fs::exists(fs::path(data_dir) / "t10k-images-idx3-ubyte.gz")) {
    MESSAGE("skipped: no Fashion-MNIST in " << data_dir << " (Debian: dataset-fashion-mnist)");
    return;
  }
  const Matrix test = read_fmnist_idx_images((fs::path(data_dir) / "t10k-images-idx3-ubyte.gz").string());
  REQUIRE(test.cols() == 10000);
  CHECK(test.minCoeff() == -1.0);
  CHECK(test.maxCoeff() == 1.0);
  MetricsOptions o;
  o.fd_classifier = classifier_path();
  o.fd_replicates = 4;
  const MetricValue self = fd_fmnist(test, o);
  const auto reference = fmnist_test_reference(o.fd_classifier, o.fd_data_dir);
  // 2 tr S - 2 tr((S^{1/2} S S^{1/2})^{1/2}) in rounding: a few eps tr S per eigenvalue.
  CHECK(self.value <= 256 * 64 * eps * reference->cov_trace);
  CHECK(fmnist_test_reference(o.fd_classifier, o.fd_data_dir).get() == reference.get());

  TempDir dir("fd_fmnist");
  const Matrix first = test.leftCols(300);
  write_samples_npy(dir.file("images.npy"), first);
  const auto r =
      run({"evaluate", "--samples", dir.file("images.npy"), "--reference", dir.file("images.npy"), "--metrics",
           "fd_fmnist", "--fd-classifier", o.fd_classifier, "--fd-replicates", "10", "--out", dir.file("m.json")});
  INFO(r.out << r.err);
  REQUIRE(r.code == 0);
  std::ifstream in(dir.file("m.json"));
  const auto j = nlohmann::json::parse(in);
  o.fd_replicates = 10;
  const MetricValue direct = fd_fmnist(first, o);
  CHECK(j["metrics"]["fd_fmnist"]["value"].get<double>() == direct.value);
  CHECK(direct.value > 0);
  CHECK(direct.std_error > 0);

  write_samples_npy(dir.file("flat.npy"), Matrix::Zero(2, 10));
  const auto bad = run({"evaluate", "--samples", dir.file("flat.npy"), "--reference", dir.file("flat.npy"), "--metrics",
                        "fd_fmnist", "--out", dir.file("bad.json")});
  CHECK(bad.code == 2);
  check_contains(bad.err, "fd_fmnist");
  CHECK(!fs::exists(dir.file("bad.json")));
}

TEST_CASE("IDX images: scaling, and truncated, corrupted and foreign files as named errors") {
  TempDir dir("idx");
  const std::string bytes = idx_bytes(3);
  write_gz(dir.file("ok.gz"), bytes);
  const Matrix images = read_fmnist_idx_images(dir.file("ok.gz"));
  REQUIRE(images.rows() == 784);
  REQUIRE(images.cols() == 3);
  CHECK(images(0, 0) == -1.0);
  CHECK(images(5, 2) == ((784 * 2 + 5) * 7 % 256) / 127.5 - 1.0);
  dir.write("plain", bytes);
  CHECK(read_fmnist_idx_images(dir.file("plain")) == images);

  write_gz(dir.file("short.gz"), bytes.substr(0, bytes.size() - 10));
  check_error<InputError>([&] { read_fmnist_idx_images(dir.file("short.gz")); }, {"short.gz", "truncated"});
  write_gz(dir.file("long.gz"), bytes + "xx");
  check_error<InputError>([&] { read_fmnist_idx_images(dir.file("long.gz")); },
                          {"long.gz", "bytes after the IDX data"});
  write_gz(dir.file("labels.gz"), std::string{0, 0, 8, 1, 0, 0, 0, 1, 5});
  check_error<InputError>([&] { read_fmnist_idx_images(dir.file("labels.gz")); }, {"labels.gz", "rank 1"});
  write_gz(dir.file("small.gz"), idx_bytes(2, 14, 14));
  check_error<InputError>([&] { read_fmnist_idx_images(dir.file("small.gz")); }, {"small.gz", "14 x 14"});
  // A gzip stream cut short, and one with damaged compressed data.
  const std::string gz = read_file(dir.file("ok.gz"));
  dir.write("cut.gz", gz.substr(0, gz.size() / 2));
  check_error<InputError>([&] { read_fmnist_idx_images(dir.file("cut.gz")); }, {"cut.gz", "gzip error"});
  std::string damaged = gz;
  for (std::size_t i = 20; i < 60 && i < damaged.size(); ++i) damaged[i] = static_cast<char>(~damaged[i]);
  dir.write("damaged.gz", damaged);
  check_error<InputError>([&] { read_fmnist_idx_images(dir.file("damaged.gz")); }, {"damaged.gz"});
  check_error<InputError>([&] { read_fmnist_idx_images(dir.file("missing.gz")); },
                          {"missing.gz", "dataset-fashion-mnist"});
}

TEST_CASE("the classifier file: named errors") {
  TempDir dir("classifier");
  check_error<InputError>([&] { load_fmnist_classifier(dir.file("none.npz")); }, {"none.npz", "train_classifier.py"});
  MetricsOptions o;
  o.metrics = {"fd_fmnist"};
  o.fd_classifier = dir.file("none.npz");
  check_error<InputError>([&] { evaluate_metrics(Matrix::Zero(784, 5), Matrix::Zero(784, 5), nullptr, o); },
                          {"none.npz"});
}
