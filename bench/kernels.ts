// Placeholder until the kernels benchmarks land.
export async function run(): Promise<void> {}
