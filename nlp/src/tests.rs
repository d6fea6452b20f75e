//! Unit tests on a tiny in-memory vocabulary, plus one test against the real data
//! when `TELEPIPE_NLP_DATA` names a directory built by scripts/build-nlp-data.py.

use super::*;
use std::io::Write;

const CODES: &str = "I10\tEssential (primary) hypertension
R07.9\tChest pain, unspecified
R50.9\tFever, unspecified
E11.9\tType 2 diabetes mellitus without complications
I21.9\tAcute myocardial infarction, unspecified
R51.9\tHeadache, unspecified
";
const DRUGS: &str = "Metformin\tDB00331 MESH:D008687
Lisinopril\tDB00722
Acetaminophen\tDB00316
";
const TERMS: &str = "hypertension\t0:0.9\t\t
chest pain\t1:0.95\t\t
fever\t2:0.95\t\t
diabetes\t3:0.9\t\t
heart attack\t4:1\t\t
headache\t5:0.97\t\t
have the sugar\t3:1\t\t2,0
metformin\t\t0:G\t
lisinopril\t\t1:G\t
tylenol\t\t2:B\t
";
const CONTEXT: &str = "no\tNEGATED_EXISTENCE\tFORWARD
denies\tNEGATED_EXISTENCE\tFORWARD
not\tNEGATED_EXISTENCE\tFORWARD
but\tNEGATED_EXISTENCE\tTERMINATE
history of\tHISTORICAL\tFORWARD
mother\tFAMILY\tFORWARD
if you\tHYPOTHETICAL\tFORWARD
possible\tPOSSIBLE_EXISTENCE\tFORWARD
no problem\tPSEUDO\t-
";

fn engine() -> Engine {
    Engine::from_tables(Tables::from_bodies(CODES, DRUGS, TERMS, CONTEXT))
        .expect("tiny tables load")
}

fn slice(text: &str, b: u32, e: u32) -> String {
    text.chars()
        .skip(b as usize)
        .take((e - b) as usize)
        .collect()
}

/// Every entity's and attribute's offsets select exactly its text.
fn assert_offsets(text: &str, ents: &[ClinicalEntity]) {
    for e in ents {
        assert_eq!(slice(text, e.begin_offset, e.end_offset), e.text, "{e:?}");
        for a in &e.attributes {
            assert_eq!(slice(text, a.begin_offset, a.end_offset), a.text, "{a:?}");
        }
    }
}

fn texts(ents: &[ClinicalEntity]) -> Vec<&str> {
    ents.iter().map(|e| e.text.as_str()).collect()
}

fn has_trait(e: &ClinicalEntity, name: &str) -> bool {
    e.traits.iter().any(|t| t.name == name)
}

fn find<'a>(ents: &'a [ClinicalEntity], text: &str) -> &'a ClinicalEntity {
    ents.iter()
        .find(|e| e.text == text)
        .unwrap_or_else(|| panic!("no entity {text:?} in {:?}", texts(ents)))
}

#[test]
fn matches_conditions_and_drugs_in_order() {
    let e = engine();
    let text = "I take Metformin for diabetes and my chest pain is new. Hypertension too.";
    let ents = e.analyze(Analysis::Entities, text);
    assert_eq!(
        texts(&ents),
        ["Metformin", "diabetes", "chest pain", "Hypertension"]
    );
    assert_eq!(ents[0].category, "MEDICATION");
    assert_eq!(ents[0].kind, "GENERIC_NAME");
    assert_eq!(ents[1].category, "MEDICAL_CONDITION");
    assert_eq!(ents[1].kind, "DX_NAME");
    assert!(ents
        .iter()
        .all(|x| x.concepts.is_empty() && x.id.is_empty() && x.speaker.is_none()));
    assert!(has_trait(&ents[2], "SYMPTOM"));
    assert!(has_trait(&ents[3], "DIAGNOSIS"));
    assert_offsets(text, &ents);
}

#[test]
fn icd_and_drug_concepts() {
    let e = engine();
    let text = "Chest pain since Monday; she takes tylenol and metformin.";
    let icd = e.analyze(Analysis::Icd10Cm, text);
    assert_eq!(texts(&icd), ["Chest pain"]);
    assert_eq!(icd[0].concepts[0].code, "R07.9");
    assert_eq!(icd[0].concepts[0].description, "Chest pain, unspecified");
    let drugs = e.analyze(Analysis::Drugs, text);
    assert_eq!(texts(&drugs), ["tylenol", "metformin"]);
    assert_eq!(drugs[0].kind, "BRAND_NAME");
    assert_eq!(drugs[0].concepts[0].code, "DB00316");
    let codes: Vec<&str> = drugs[1].concepts.iter().map(|c| c.code.as_str()).collect();
    assert_eq!(codes, ["DB00331", "MESH:D008687"]);
    assert_eq!(e.info().drug_code_system, "DrugBank");
}

#[test]
fn offsets_are_code_points_on_non_ascii_text() {
    let e = engine();
    let text = "Ärztin: 😀 Schöne Grüße — chest pain, ünd fever 🤒 über hypertension.\r\n\
                Señor: naïve 日本語 headaches and Metformin 500 mg";
    for a in [Analysis::Entities, Analysis::Icd10Cm, Analysis::Drugs] {
        let ents = e.analyze(a, text);
        assert!(!ents.is_empty());
        assert_offsets(text, &ents);
    }
    let ents = e.analyze(Analysis::Entities, text);
    assert_eq!(
        texts(&ents),
        [
            "chest pain",
            "fever",
            "hypertension",
            "headaches",
            "Metformin"
        ]
    );
    assert_eq!(find(&ents, "Metformin").attributes[0].text, "500 mg");
}

#[test]
fn speaker_prefixes_are_skipped() {
    let e = engine();
    let text = "Doctor: any chest pain?\nPatient: No, but I get a headache.\nDr. Smith: Fever?\n\
                spk_0: Metformin.\nHypertension: well controlled\nMaria: fine";
    let ents = e.analyze(Analysis::Entities, text);
    assert_eq!(
        texts(&ents),
        [
            "chest pain",
            "headache",
            "Fever",
            "Metformin",
            "Hypertension"
        ]
    );
    assert_offsets(text, &ents);
    // "No," answering a question negates nothing.
    assert!(!has_trait(find(&ents, "headache"), "NEGATION"));
    // A prefix that names the vocabulary is content: the speaker "Headache" would be odd.
    let lines = "Fever: 38.5 since 10:30";
    assert_eq!(texts(&e.analyze(Analysis::Entities, lines)), ["Fever"]);
}

#[test]
fn context_traits() {
    let e = engine();
    let text = "I have no fever but chest pain. My mother had a heart attack. \
                History of hypertension. If you get a headache, call us. \
                No problem with diabetes. Possible diabetes. She denies taking metformin.";
    let ents = e.analyze(Analysis::Entities, text);
    let fever = find(&ents, "fever");
    assert!(has_trait(fever, "NEGATION"));
    assert!(!has_trait(find(&ents, "chest pain"), "NEGATION"));
    assert!(has_trait(find(&ents, "heart attack"), "PERTAINS_TO_FAMILY"));
    assert!(has_trait(find(&ents, "hypertension"), "PAST_HISTORY"));
    assert!(has_trait(find(&ents, "headache"), "HYPOTHETICAL"));
    let diabetes: Vec<_> = ents.iter().filter(|x| x.text == "diabetes").collect();
    assert!(diabetes[0].traits.iter().all(|t| t.name == "DIAGNOSIS"));
    assert!(has_trait(diabetes[1], "LOW_CONFIDENCE"));
    assert!(has_trait(find(&ents, "metformin"), "NEGATION"));
    // Cues do not cross sentences.
    let ents = e.analyze(Analysis::Icd10Cm, "No.\nFever and chest pain.");
    assert!(ents.iter().all(|x| !has_trait(x, "NEGATION")));
}

#[test]
fn medication_attributes() {
    let e = engine();
    let text = "Take metformin 500 mg twice a day by mouth and lisinopril 10mg daily for 2 weeks. \
                Then 1,000 mg of Tylenol every 6 hours.";
    let ents = e.analyze(Analysis::Drugs, text);
    assert_offsets(text, &ents);
    let attrs = |name: &str| -> Vec<(String, String)> {
        find(&ents, name)
            .attributes
            .iter()
            .map(|a| (a.kind.clone(), a.text.clone()))
            .collect()
    };
    let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    assert_eq!(
        attrs("metformin"),
        pairs(&[
            ("DOSAGE", "500 mg"),
            ("FREQUENCY", "twice a day"),
            ("ROUTE_OR_MODE", "by mouth")
        ])
    );
    assert_eq!(
        attrs("lisinopril"),
        pairs(&[
            ("DOSAGE", "10mg"),
            ("FREQUENCY", "daily"),
            ("DURATION", "for 2 weeks")
        ])
    );
    assert_eq!(
        attrs("Tylenol"),
        pairs(&[("DOSAGE", "1,000 mg"), ("FREQUENCY", "every 6 hours")])
    );
    let a = &find(&ents, "metformin").attributes[0];
    assert_eq!(a.relationship_type.as_deref(), Some("DOSAGE"));
    // Conditions carry no medication attributes; attributes without a drug are dropped.
    let ents = e.analyze(Analysis::Entities, "Fever 500 mg twice a day.");
    assert!(ents[0].attributes.is_empty());
}

#[test]
fn lay_term_trim_and_plurals() {
    let e = engine();
    let text = "I have the sugar and headaches.";
    let ents = e.analyze(Analysis::Icd10Cm, text);
    assert_eq!(texts(&ents), ["sugar", "headaches"]);
    assert_eq!(ents[0].concepts[0].code, "E11.9");
    assert_eq!(ents[1].concepts[0].code, "R51.9");
    assert_offsets(text, &ents);
}

#[test]
fn deterministic() {
    let e = engine();
    let mut text = String::new();
    for k in 0..200 {
        text.push_str(&format!(
            "Patient: no fever {k} but chest pain, metformin 500 mg daily. Mother: diabetes.\n"
        ));
    }
    let a = e.analyze(Analysis::Entities, &text);
    let b = e.analyze(Analysis::Entities, &text);
    assert_eq!(a, b);
    assert!(a
        .windows(2)
        .all(|w| (w[0].begin_offset, w[0].end_offset) <= (w[1].begin_offset, w[1].end_offset)));
    assert_eq!(a.len(), 200 * 4);
    assert_eq!(e.analyze(Analysis::Entities, ""), Vec::new());
}

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("telepipe-nlp-test-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn write_gz(path: &Path, body: &str) {
    let f = std::fs::File::create(path).unwrap();
    let mut gz = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
    gz.write_all(body.as_bytes()).unwrap();
    gz.finish().unwrap();
}

fn write_tables(dir: &Path) {
    let t = Tables::from_bodies(CODES, DRUGS, TERMS, CONTEXT);
    write_gz(&dir.join("icd10cm-codes.tsv.gz"), &t.codes);
    write_gz(&dir.join("drugs.tsv.gz"), &t.drugs);
    write_gz(&dir.join("terms.tsv.gz"), &t.terms);
    std::fs::write(dir.join("context-rules.tsv"), &t.context).unwrap();
}

#[test]
fn load_from_files_and_errors_name_the_file() {
    let dir = temp_dir("load");
    write_tables(&dir);
    let e = Engine::load(&dir).expect("loads");
    assert_eq!(
        texts(&e.analyze(Analysis::Entities, "chest pain")),
        ["chest pain"]
    );

    // Missing file.
    std::fs::remove_file(dir.join("drugs.tsv.gz")).unwrap();
    let err = Engine::load(&dir).err().expect("missing file fails");
    assert!(err.path().ends_with("drugs.tsv.gz"));
    let msg = err.to_string();
    assert!(
        msg.contains("drugs.tsv.gz") && msg.contains("build-nlp-data"),
        "{msg}"
    );

    // Corrupt gzip.
    write_tables(&dir);
    std::fs::write(dir.join("terms.tsv.gz"), b"\x1f\x8bnot really gzip").unwrap();
    let err = Engine::load(&dir).err().expect("corrupt file fails");
    assert!(err.path().ends_with("terms.tsv.gz"), "{err}");

    // Valid gzip, wrong content.
    write_tables(&dir);
    write_gz(&dir.join("icd10cm-codes.tsv.gz"), "hello\n");
    let err = Engine::load(&dir).err().expect("wrong header fails");
    assert!(err.to_string().contains("icd10cm-codes.tsv.gz"), "{err}");

    // Unknown ConText category.
    write_tables(&dir);
    std::fs::write(
        dir.join("context-rules.tsv"),
        "#telepipe-nlp:context-rules:v1\nno\tNOPE\tFORWARD\n",
    )
    .unwrap();
    let err = Engine::load(&dir).err().expect("bad rule fails");
    assert!(err.path().ends_with("context-rules.tsv"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn real_data_known_answers() {
    let Some(dir) = std::env::var_os("TELEPIPE_NLP_DATA") else {
        eprintln!(
            "skipped: set TELEPIPE_NLP_DATA to a directory built by scripts/build-nlp-data.py"
        );
        return;
    };
    let e = Engine::load(Path::new(&dir)).expect("real data loads");
    let text = "Patient: I've had chest pain and no fever. I have hypertension and take metformin 500 mg twice a day.";
    let icd = e.analyze(Analysis::Icd10Cm, text);
    assert_offsets(text, &icd);
    let code = |t: &str| find(&icd, t).concepts[0].code.clone();
    assert_eq!(code("chest pain"), "R07.9");
    assert_eq!(code("hypertension"), "I10");
    assert!(has_trait(find(&icd, "fever"), "NEGATION"));
    assert!(!has_trait(find(&icd, "chest pain"), "NEGATION"));
    let drugs = e.analyze(Analysis::Drugs, text);
    let met = find(&drugs, "metformin");
    assert!(!met.concepts.is_empty());
    assert_eq!(met.concepts[0].code, "DB00331");
    assert!(met
        .attributes
        .iter()
        .any(|a| a.kind == "DOSAGE" && a.text == "500 mg"));
    // Every key in the terms file is a fixed point of the engine's normalisation.
    for line in e.lex.terms_text.lines().skip(1).step_by(97) {
        let key = line.split('\t').next().unwrap();
        assert_eq!(tokenize::normalize(key), key);
    }
}

#[test]
fn engine_is_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Engine>();
    assert_send_sync::<LoadError>();
}
