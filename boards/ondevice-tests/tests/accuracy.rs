//! On-device accuracy tests: each built-in test model runs on the core over its embedded test
//! subset, and every output byte must equal what `tinykd-device` computed on the host at build
//! time. One source for both paths: QEMU in CI (`tools/qemu-test-runner.py` boots one machine
//! per test) and a real board (`probe-rs run`, which does the same over the debug probe).
#![no_std]
#![no_main]

#[cfg(test)]
#[embedded_test::tests]
mod tests {
    use tinykd_ondevice_tests::{assert_identical, case, CASES};

    #[test]
    fn e2e_cnn_matches_the_host() {
        assert_identical(case::E2E_CNN);
    }

    #[test]
    fn int8_student_matches_the_host() {
        assert_identical(case::INT8_STUDENT);
    }

    #[test]
    fn binary_student_matches_the_host() {
        assert_identical(case::BINARY_STUDENT);
    }

    /// `TINYKD_BLOB` at build time (a trained student, say); passes trivially without one.
    #[test]
    fn user_blob_matches_the_host() {
        if CASES.len() > case::USER_BLOB {
            assert_identical(case::USER_BLOB);
        }
    }

    /// A corrupted blob is refused with an error, never a fault or a panic.
    #[test]
    fn a_corrupted_blob_is_refused() {
        static mut COPY: [u8; 16 * 1024] = [0; 16 * 1024];
        let blob = CASES[case::E2E_CNN].blob;
        // SAFETY: this test runs in its own boot; this is the only reference.
        let copy = unsafe { &mut *core::ptr::addr_of_mut!(COPY) };
        let copy = &mut copy[..blob.len()];
        copy.copy_from_slice(blob);
        copy[blob.len() / 2] ^= 0x10;
        assert!(tinykd_device::Model::from_bytes(copy).is_err());
        assert!(tinykd_device::Model::from_bytes(&copy[..blob.len() / 3]).is_err());
    }
}
