// The `scoresde` command line. run_cli is the whole program minus process start-up, so tests call it in-process.
// Exit status: 0 success, 2 bad option or input file (nothing written), 3 a sampler diverged (nothing written),
// 1 anything unexpected.
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

namespace scoresde {

int run_cli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

// Subcommands, each given the arguments after its name.
int sample_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
int study_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
int report_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
int convergence_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
int compare_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
int evaluate_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
int likelihood_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
int train_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
int evaluate_score_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
int gaussian_law_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
int fit_mixture_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
int brownian_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
int list_command(std::ostream& out);

}  // namespace scoresde
