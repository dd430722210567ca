// study.ini (`scoresde study --config DIR/study.ini`, as --resume and a rerun read it): the whole study command on
// the file with --dry-run, so that the INI reader, every option's check, the presets and the expansion of the grid
// see it, and nothing runs. The process works in its scratch directory: an "out" key lands there. (So the corpus and
// artifact paths given to it must be absolute, as scripts/fuzz.sh gives them.)
#include <ostream>
#include <sstream>

#include "experiments/cli/cli.hpp"
#include "fuzz_input.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace scoresde;
  static const bool in_scratch = (std::filesystem::current_path(fuzz::scratch_dir()), true);
  (void)in_scratch;
  const std::string path = fuzz::write_input("study.ini", fuzz::as_text(data, size));
  std::ostringstream out, err;
  fuzz::expect_clean_refusal([&] { study_command({"--config", path, "--dry-run"}, out, err); });
  return 0;
}
