fn main() {
    eprintln!("taskraft-jepsen: not built yet (issue 4)");
    std::process::exit(2)
}
