#include "cli/app.h"

int main(int argc, char** argv) { return dqe::cli::run(argc, argv); }
