//! Chooses OpenBLAS's CPU kernels before OpenBLAS chooses wrongly.
//!
//! whisper.cpp hands the encoder's large matrix products to OpenBLAS. OpenBLAS picks its
//! kernels once, when the library is loaded (before `main`), from the CPU's model number, and
//! on a model it does not know (virtual CPUs often report one) it falls back to its oldest
//! x86-64 kernels ("Prescott"): on this project's machine a transcription then took 21.6 s
//! instead of 13.2 s. The only way to choose is the `OPENBLAS_CORETYPE` environment variable,
//! read at load time; so a program that transcribes calls [`select_cpu_kernels`] before any
//! work: when the variable is unset it sets it from the CPU's own feature flags and
//! re-executes the program, once. A variable set by the user is always left alone.

/// Marks the re-executed process, so a failed choice cannot loop.
const REEXEC_MARK: &str = "TELEPIPE_BLAS_REEXEC";
const CORETYPE: &str = "OPENBLAS_CORETYPE";

/// The OpenBLAS kernel family for this CPU's features, if one is safe to name.
pub fn kernels_for_this_cpu() -> Option<&'static str> {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512dq")
            && std::arch::is_x86_feature_detected!("avx512vl")
        {
            return Some("SkylakeX");
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return Some("Haswell");
        }
    }
    None
}

/// Sets `OPENBLAS_CORETYPE` from the CPU's features and re-executes the current program with
/// the same arguments, unless the variable is already set (by the user, or by this function in
/// the parent), the CPU has no better kernels than the default, or the program was built
/// without whisper.cpp. Returns normally in those cases, and when re-executing fails (the
/// program then runs with OpenBLAS's own choice, only slower).
pub fn select_cpu_kernels() {
    if !cfg!(all(feature = "whisper", unix))
        || std::env::var_os(CORETYPE).is_some()
        || std::env::var_os(REEXEC_MARK).is_some()
    {
        return;
    }
    let Some(kernels) = kernels_for_this_cpu() else {
        return;
    };
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        let Ok(program) = std::env::current_exe() else {
            return;
        };
        let error = std::process::Command::new(program)
            .args(std::env::args_os().skip(1))
            .env(CORETYPE, kernels)
            .env(REEXEC_MARK, "1")
            .exec();
        eprintln!(
            "telepipe: could not re-execute with {CORETYPE}={kernels} ({error}); \
             OpenBLAS keeps its own kernel choice"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_only_kernel_families_openblas_knows() {
        assert!(matches!(
            kernels_for_this_cpu(),
            None | Some("SkylakeX") | Some("Haswell")
        ));
    }
}
