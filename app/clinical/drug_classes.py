"""The drug classes the allergy check knows: the common allergen classes, with the generic names (and the
spellings and combination names) under which Indian prescriptions name their members.

Curated from, and to be reviewed against:
- WHO Collaborating Centre for Drug Statistics Methodology, ATC/DDD Index (https://atcddd.fhi.no/atc_ddd_index/):
  the class of each generic (J01C penicillins; J01DB-DE cephalosporins; J01DF monobactams; J01DH/J01DI
  carbapenems and penems; J01E sulfonamides; J01FA macrolides; J01MA fluoroquinolones, J01MB quinolones;
  M01A non-steroidal anti-inflammatory drugs, N02BA aspirin; N02A opioids, R05DA opium alkaloids in cough
  preparations).
- National List of Essential Medicines of India 2022 (MoHFW) and the Indian Pharmacopoeia: the generic names and
  spellings used in India ("amoxycillin", "sulphamethoxazole", "co-trimoxazole", "cephalexin").
- Cross-reactivity: Khan DA et al., Drug allergy: a 2022 practice parameter update, J Allergy Clin Immunol
  2022;150:1333-93. A penicillin allergy cross-reacts with cephalosporins rarely (about 1-2%), and then mostly
  through an R1 side chain shared with amoxicillin/ampicillin (cefalexin, cefadroxil, cefaclor, cefprozil);
  with carbapenems in under 1%; aztreonam does not cross-react with penicillins.
- Sulfonamides: Strom BL et al., N Engl J Med 2003;349:1628-35. An allergy to an antibacterial (arylamine)
  sulfonamide does not predict one to the non-antibacterial sulfonamides (furosemide, thiazides, celecoxib,
  sulfonylureas), so only the antibacterial ones (and sulfasalazine, whose sulfapyridine is one) are listed.
  Dapsone (a sulfone) is not listed.
- NSAIDs: Kowalski ML et al., Classification and practical approach to the diagnosis and management of
  hypersensitivity to NSAIDs, Allergy 2013;68:1219-32: cross-reactive NSAID hypersensitivity (through COX-1)
  is the common kind, so an allergy to one NSAID flags all. Paracetamol is not an NSAID and is not listed.

- Indian brand names (BRANDS): the generic names printed on the brands' labels as marketed in India
  (manufacturers' package inserts; CDSCO, https://cdsco.gov.in, for the approved generics and combinations).
  Only the commonest brands are listed; a brand is matched as whole words, ignoring strength ("Augmentin 625
  Duo" is Augmentin), the longest name first ("Taxim-O", cefixime, before "Taxim", cefotaxime).
- OTHER_GENERICS: common generics in none of the classes above, so the check knows it has checked them (by
  name) rather than not recognising them.

Spellings are written as the check normalises text (app/clinical/allergy_check.py): lower case, words only,
"sulph" read as "sulf", hyphens and "+" as spaces ("co-amoxiclav" is "co amoxiclav").
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class DrugClass:
    key: str
    label: str  # "penicillins": read in "one of the penicillins"
    atc: str
    terms: tuple[str, ...]  # how an allergy entry names the whole class
    generics: dict[str, tuple[str, ...]]  # generic name -> the spellings that name it in a medicine or allergy


CLASSES = (
    DrugClass("penicillins", "penicillins", "J01C", ("penicillin", "penicillins"), {
        "benzylpenicillin": ("benzylpenicillin", "penicillin", "penicillin g", "benzathine penicillin",
                             "procaine penicillin", "crystalline penicillin"),
        "phenoxymethylpenicillin": ("phenoxymethylpenicillin", "penicillin v", "penicillin vk"),
        "amoxicillin": ("amoxicillin", "amoxycillin", "amoxyclav", "amoxiclav", "co amoxiclav", "coamoxiclav"),
        "ampicillin": ("ampicillin", "ampiclox", "sultamicillin"),
        "cloxacillin": ("cloxacillin",),
        "dicloxacillin": ("dicloxacillin",),
        "flucloxacillin": ("flucloxacillin", "floxacillin"),
        "piperacillin": ("piperacillin",),
    }),
    DrugClass("cephalosporins", "cephalosporins", "J01DB-J01DE",
              ("cephalosporin", "cephalosporins", "cefalosporin", "cefalosporins"), {
        "cefalexin": ("cefalexin", "cephalexin"),
        "cefadroxil": ("cefadroxil", "cephadroxil"),
        "cefazolin": ("cefazolin", "cephazolin"),
        "cefradine": ("cefradine", "cephradine"),
        "cefalotin": ("cefalotin", "cephalothin"),
        "cefaclor": ("cefaclor",),
        "cefprozil": ("cefprozil",),
        "cefuroxime": ("cefuroxime",),
        "cefoxitin": ("cefoxitin",),
        "cefixime": ("cefixime",),
        "cefpodoxime": ("cefpodoxime",),
        "cefdinir": ("cefdinir",),
        "cefditoren": ("cefditoren",),
        "ceftriaxone": ("ceftriaxone",),
        "cefotaxime": ("cefotaxime",),
        "ceftazidime": ("ceftazidime",),
        "cefoperazone": ("cefoperazone",),
        "cefepime": ("cefepime",),
        "ceftaroline": ("ceftaroline",),
    }),
    DrugClass("carbapenems", "carbapenems", "J01DH, J01DI03", ("carbapenem", "carbapenems", "penem", "penems"), {
        "meropenem": ("meropenem",),
        "imipenem": ("imipenem",),
        "ertapenem": ("ertapenem",),
        "doripenem": ("doripenem",),
        "faropenem": ("faropenem",),
    }),
    DrugClass("monobactams", "monobactams", "J01DF", ("monobactam", "monobactams"), {
        "aztreonam": ("aztreonam",),
    }),
    DrugClass("sulfonamides", "sulfonamide antibacterials", "J01E",
              ("sulfa", "sulfas", "sulfa drug", "sulfa drugs", "sulfonamide", "sulfonamides"), {
        "sulfamethoxazole": ("sulfamethoxazole", "cotrimoxazole", "co trimoxazole", "trimethoprim sulfamethoxazole"),
        "sulfadiazine": ("sulfadiazine",),
        "sulfacetamide": ("sulfacetamide",),
        "sulfadoxine": ("sulfadoxine",),
        "sulfasalazine": ("sulfasalazine", "salazosulfapyridine"),
        "sulfisoxazole": ("sulfisoxazole", "sulfafurazole"),
        "mafenide": ("mafenide",),
    }),
    DrugClass("nsaids", "NSAIDs (non-steroidal anti-inflammatory drugs)", "M01A, N02BA",
              ("nsaid", "nsaids", "non steroidal anti inflammatory", "non steroidal anti inflammatory drugs",
               "nonsteroidal anti inflammatory drugs"), {
        "aspirin": ("aspirin", "acetylsalicylic acid"),
        "ibuprofen": ("ibuprofen",),
        "diclofenac": ("diclofenac",),
        "aceclofenac": ("aceclofenac",),
        "naproxen": ("naproxen",),
        "mefenamic acid": ("mefenamic acid", "mefenamic"),
        "ketorolac": ("ketorolac",),
        "piroxicam": ("piroxicam",),
        "meloxicam": ("meloxicam",),
        "lornoxicam": ("lornoxicam",),
        "tenoxicam": ("tenoxicam",),
        "indometacin": ("indometacin", "indomethacin"),
        "etoricoxib": ("etoricoxib",),
        "celecoxib": ("celecoxib",),
        "nimesulide": ("nimesulide",),
        "ketoprofen": ("ketoprofen", "dexketoprofen"),
        "flurbiprofen": ("flurbiprofen",),
        "etodolac": ("etodolac",),
        "nabumetone": ("nabumetone",),
    }),
    DrugClass("macrolides", "macrolides", "J01FA", ("macrolide", "macrolides"), {
        "azithromycin": ("azithromycin",),
        "erythromycin": ("erythromycin",),
        "clarithromycin": ("clarithromycin",),
        "roxithromycin": ("roxithromycin",),
    }),
    DrugClass("quinolones", "fluoroquinolones", "J01MA, J01MB",
              ("quinolone", "quinolones", "fluoroquinolone", "fluoroquinolones"), {
        "ciprofloxacin": ("ciprofloxacin",),
        "ofloxacin": ("ofloxacin",),
        "levofloxacin": ("levofloxacin",),
        "norfloxacin": ("norfloxacin",),
        "moxifloxacin": ("moxifloxacin",),
        "gatifloxacin": ("gatifloxacin",),
        "prulifloxacin": ("prulifloxacin",),
        "sparfloxacin": ("sparfloxacin",),
        "lomefloxacin": ("lomefloxacin",),
        "pefloxacin": ("pefloxacin",),
        "gemifloxacin": ("gemifloxacin",),
        "nadifloxacin": ("nadifloxacin",),
        "nalidixic acid": ("nalidixic acid",),
    }),
    DrugClass("opioids", "opioids", "N02A, R05DA",
              ("opioid", "opioids", "opiate", "opiates", "narcotic", "narcotics"), {
        "morphine": ("morphine",),
        "codeine": ("codeine",),
        "tramadol": ("tramadol",),
        "tapentadol": ("tapentadol",),
        "fentanyl": ("fentanyl",),
        "pethidine": ("pethidine", "meperidine"),
        "buprenorphine": ("buprenorphine",),
        "oxycodone": ("oxycodone",),
        "hydrocodone": ("hydrocodone",),
        "hydromorphone": ("hydromorphone",),
        "methadone": ("methadone",),
        "pentazocine": ("pentazocine",),
        "butorphanol": ("butorphanol",),
        "nalbuphine": ("nalbuphine",),
    }),
)

# An allergy entry naming a group of classes.
GROUPS = {
    "beta lactam": ("penicillins", "cephalosporins", "carbapenems", "monobactams"),
    "beta lactams": ("penicillins", "cephalosporins", "carbapenems", "monobactams"),
    "beta lactam antibiotics": ("penicillins", "cephalosporins", "carbapenems", "monobactams"),
}

# Classes whose members may cross-react with an allergy to the other class (uncommon: a caution, which
# stops signing only for a severe allergy or a shared side chain). Aztreonam is deliberately absent.
CROSS_REACTIVE = {
    "penicillins": ("cephalosporins", "carbapenems"),
    "cephalosporins": ("penicillins", "carbapenems"),
}
# The aminopenicillins and the cephalosporins sharing their R1 side chain: cross-reactivity is likelier.
AMINO_SIDE_CHAIN = frozenset({"amoxicillin", "ampicillin", "cefalexin", "cefadroxil", "cefaclor", "cefprozil",
                              "cefradine"})

# Brand (as normalised) -> the generic names on its label, spelt as in the tables here.
BRANDS = {
    "augmentin": ("amoxicillin", "clavulanic acid"),
    "clavam": ("amoxicillin", "clavulanic acid"),
    "moxikind": ("amoxicillin",),
    "moxikind cv": ("amoxicillin", "clavulanic acid"),
    "mox": ("amoxicillin",),
    "novamox": ("amoxicillin",),
    "penidure": ("benzathine penicillin",),
    "penidure la": ("benzathine penicillin",),
    "sporidex": ("cefalexin",),
    "taxim": ("cefotaxime",),
    "taxim o": ("cefixime",),
    "zifi": ("cefixime",),
    "monocef": ("ceftriaxone",),
    "oframax": ("ceftriaxone",),
    "ceftum": ("cefuroxime",),
    "septran": ("sulfamethoxazole", "trimethoprim"),
    "septran ds": ("sulfamethoxazole", "trimethoprim"),
    "bactrim": ("sulfamethoxazole", "trimethoprim"),
    "bactrim ds": ("sulfamethoxazole", "trimethoprim"),
    "ecosprin": ("aspirin",),
    "disprin": ("aspirin",),
    "brufen": ("ibuprofen",),
    "combiflam": ("ibuprofen", "paracetamol"),
    "voveran": ("diclofenac",),
    "zerodol": ("aceclofenac",),
    "hifenac": ("aceclofenac",),
    "meftal": ("mefenamic acid",),
    "nise": ("nimesulide",),
    "azithral": ("azithromycin",),
    "azee": ("azithromycin",),
    "ciplox": ("ciprofloxacin",),
    "cifran": ("ciprofloxacin",),
    "oflox": ("ofloxacin",),
    "norflox": ("norfloxacin",),
    "ultracet": ("tramadol", "paracetamol"),
    "contramal": ("tramadol",),
    "crocin": ("paracetamol",),
    "dolo": ("paracetamol",),
    "calpol": ("paracetamol",),
}

OTHER_GENERICS = frozenset({
    "paracetamol", "acetaminophen", "clavulanic acid", "clavulanate", "trimethoprim", "metronidazole", "ornidazole",
    "tinidazole", "doxycycline", "nitrofurantoin", "fluconazole", "albendazole", "cetirizine", "levocetirizine",
    "fexofenadine", "chlorpheniramine", "montelukast", "salbutamol", "prednisolone", "pantoprazole", "omeprazole",
    "rabeprazole", "esomeprazole", "ranitidine", "famotidine", "domperidone", "ondansetron", "metformin",
    "glimepiride", "amlodipine", "telmisartan", "losartan", "atorvastatin", "rosuvastatin", "ors",
})
