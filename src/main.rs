fn main() {
    std::process::exit(vosbench::cli::main());
}
