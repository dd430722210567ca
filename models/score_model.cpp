#include "models/score_model.hpp"
