fn main() {
    println!("memmap-collect: under construction");
}
