//! Writes the bundled sample datasets (`reviews.{csv,json,parquet}` and `articles.json`)
//! deterministically; run with `cargo run --example make_data [-- OUT_DIR]` (default `data`).
//!
//! The reviews are built from phrase templates so that a word-counting sentiment classifier
//! sees roughly 45% positive, 35% negative and 20% neutral texts. About 15% of the rows are in
//! German, French or Spanish, ten texts are exact duplicates of earlier ones, three texts are
//! empty strings and two are NULL. In the CSV a NULL text is an empty unquoted field and an
//! empty text is `""` (arrow's CSV writer cannot tell the two apart, so the CSV is written by
//! hand here).

use std::collections::HashSet;
use std::fmt;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, StringArray, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::json::LineDelimitedWriter;
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

/// Error returned from `main`; its `Debug` output is the plain message.
struct AppError(String);

impl fmt::Debug for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

type Result<T> = std::result::Result<T, AppError>;

/// Adds a readable context to any displayable error.
trait Context<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T, E: fmt::Display> Context<T> for std::result::Result<T, E> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| AppError(format!("{}: {e}", what())))
    }
}

/// splitmix64: tiny, fast and good enough for sample data.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform-ish integer in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// True with probability `percent`/100.
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Review phrase templates. `{p}` is a product noun, `{c}` a colour, `{d}` a weekday, `{w}` a
// person, `{n}` a small number, `{o}` an occasion.
// ---------------------------------------------------------------------------------------------

const CATEGORIES: [&str; 5] = ["electronics", "home", "books", "clothing", "toys"];

const PRODUCTS: [&[&str]; 5] = [
    &[
        "headset",
        "charger",
        "keyboard",
        "tablet",
        "webcam",
        "speaker",
        "mouse",
        "power bank",
        "smartwatch",
        "router",
        "monitor",
        "USB hub",
    ],
    &[
        "kettle",
        "desk lamp",
        "blender",
        "vacuum cleaner",
        "pillow",
        "frying pan",
        "coffee maker",
        "shower curtain",
        "toaster",
        "rug",
        "storage box",
        "bed sheet set",
    ],
    &[
        "novel",
        "cookbook",
        "biography",
        "travel guide",
        "thriller",
        "poetry collection",
        "history book",
        "comic",
        "textbook",
        "children's book",
        "audiobook",
        "atlas",
    ],
    &[
        "jacket",
        "hoodie",
        "scarf",
        "raincoat",
        "sweater",
        "T-shirt",
        "dress",
        "pair of jeans",
        "winter coat",
        "wool hat",
        "belt",
        "pair of sneakers",
    ],
    &[
        "puzzle",
        "drone",
        "board game",
        "plush bear",
        "building set",
        "toy car",
        "doll house",
        "kite",
        "yo-yo",
        "train set",
        "science kit",
        "marble run",
    ],
];

const COLOURS: [&str; 9] = [
    "blue", "black", "grey", "green", "red", "white", "beige", "navy", "yellow",
];
const DAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];
const PEOPLE: [&str; 10] = [
    "sister",
    "brother",
    "dad",
    "mom",
    "son",
    "daughter",
    "neighbour",
    "office",
    "partner",
    "grandmother",
];
const OCCASIONS: [&str; 5] = [
    "a birthday",
    "the holidays",
    "travel",
    "everyday use",
    "a rainy weekend",
];

const EN_POS_FIRST: [&str; 12] = [
    "The {p} is great.",
    "I love this {p}.",
    "Excellent {p}, exactly what I needed.",
    "Amazing {p} for the price.",
    "This {p} is perfect.",
    "Great {p}, I use it every day.",
    "I would recommend this {p} to anyone.",
    "Really love the {p}.",
    "The {p} is excellent value.",
    "Amazing quality, the {p} exceeded my expectations.",
    "Perfect {p} for {o}.",
    "Best {p} I have bought in years, simply great.",
];
const EN_POS_MORE: [&str; 11] = [
    "Delivery was fast.",
    "Fast shipping too.",
    "Highly recommend.",
    "Great seller, very friendly.",
    "My {w} loves it.",
    "Amazing value for money.",
    "Would buy again, excellent experience.",
    "Everything was perfect.",
    "I recommend it to my friends.",
    "The label says \"premium\" and it really is great.",
    "Love it!",
];
const EN_POS_CAT: [[&str; 3]; 5] = [
    [
        "Battery life is amazing.",
        "Sound quality is excellent.",
        "Setup was fast and easy.",
    ],
    [
        "Looks great in the living room.",
        "Cleaning it is fast and easy.",
        "Great build quality.",
    ],
    [
        "I love the characters.",
        "The writing is excellent.",
        "A great read from start to finish.",
    ],
    [
        "The fit is perfect.",
        "The fabric feels great.",
        "Love the colour.",
    ],
    [
        "The kids love it.",
        "Great for hours of fun.",
        "An amazing gift.",
    ],
];

const EN_NEG_FIRST: [&str; 11] = [
    "The {p} arrived broken.",
    "Terrible {p}, I regret buying it.",
    "Very disappointed with this {p}.",
    "Worst {p} I have ever bought.",
    "The {p} came damaged and the box was torn.",
    "Delivery was late and the {p} is scratched.",
    "Terrible quality, the {p} fell apart within a week.",
    "I am disappointed, the {p} looks nothing like the photos.",
    "Broken on arrival, the {p} is useless.",
    "Shipping was slow and the {p} was damaged.",
    "The worst {p} on the market.",
];
const EN_NEG_MORE: [&str; 9] = [
    "I asked for a refund.",
    "Still waiting for my refund.",
    "Customer service was slow to answer.",
    "Really disappointed.",
    "Worst purchase this year.",
    "The package arrived late.",
    "Returning it for a refund.",
    "Terrible experience overall.",
    "The box said \"handle with care\" but it came damaged anyway.",
];
const EN_NEG_CAT: [[&str; 3]; 5] = [
    [
        "Charging is painfully slow.",
        "The screen was broken.",
        "The connection drops constantly, terrible.",
    ],
    [
        "One part arrived damaged.",
        "The finish was damaged.",
        "Really disappointed with the build quality.",
    ],
    [
        "Several pages were damaged.",
        "The plot is slow and dull.",
        "Terrible editing, full of typos.",
    ],
    [
        "The seams were broken after one wash.",
        "Terrible fit.",
        "The colour faded, very disappointed.",
    ],
    [
        "A piece was broken.",
        "The battery cover was damaged.",
        "My son was disappointed.",
    ],
];

const EN_NEU_FIRST: [&str; 10] = [
    "The {p} arrived on {d}.",
    "The {p} is {c}.",
    "Average {p}.",
    "Bought this {p} for my {w}.",
    "The {p} matches the description.",
    "The {p} is {c} and comes in a cardboard box.",
    "Ordered the {p} on {d}.",
    "This is my second {p} from this brand.",
    "The {p} is an average product.",
    "It is a {c} {p}.",
];
const EN_NEU_MORE: [&str; 11] = [
    "It arrived on {d}.",
    "It is {c}.",
    "Average quality.",
    "Nothing special.",
    "The package had a tracking number.",
    "It does what the description says.",
    "Size is as listed.",
    "I have used it {n} times so far.",
    "The box contained a manual.",
    "Price was average.",
    "The box is labelled \"{c} edition\".",
];

/// One language's sentence pools for positive, negative and neutral reviews (first, more).
struct LangPhrases {
    code: &'static str,
    pos: (&'static [&'static str], &'static [&'static str]),
    neg: (&'static [&'static str], &'static [&'static str]),
    neu: (&'static [&'static str], &'static [&'static str]),
}

const FOREIGN: [LangPhrases; 3] = [
    LangPhrases {
        code: "de",
        pos: (
            &[
                "Tolles Produkt, ich bin begeistert.",
                "Super Qualität, sehr zufrieden.",
                "Absolut perfekt, genau wie beschrieben.",
                "Ich liebe es!",
                "Hervorragende Verarbeitung.",
                "Sehr gutes Preis-Leistungs-Verhältnis.",
            ],
            &[
                "Die Lieferung war sehr schnell.",
                "Klare Kaufempfehlung.",
                "Würde ich sofort wieder kaufen.",
                "Meine Familie ist begeistert.",
                "Alles bestens.",
            ],
        ),
        neg: (
            &[
                "Leider kaputt angekommen.",
                "Schreckliche Qualität.",
                "Sehr enttäuscht von diesem Produkt.",
                "Das schlechteste Produkt, das ich je gekauft habe.",
                "Die Verpackung war beschädigt.",
                "Nach zwei Tagen defekt.",
            ],
            &[
                "Ich möchte mein Geld zurück.",
                "Die Lieferung kam viel zu spät.",
                "Der Kundenservice antwortet nicht.",
                "Nie wieder.",
                "Die Rücksendung ist schon unterwegs.",
            ],
        ),
        neu: (
            &[
                "Ist am Dienstag angekommen.",
                "Die Farbe ist blau.",
                "Durchschnittliche Qualität.",
                "Für meinen Bruder gekauft.",
                "Entspricht der Beschreibung.",
                "Das Paket kam am Montag.",
            ],
            &[
                "Größe wie angegeben.",
                "Die Anleitung ist auf Deutsch.",
                "Nichts Besonderes.",
                "Die Farbe ist grau.",
                "Wurde in einem Karton geliefert.",
            ],
        ),
    },
    LangPhrases {
        code: "fr",
        pos: (
            &[
                "Excellent produit, je recommande !",
                "Très bonne qualité, je suis ravi.",
                "J'adore, c'est parfait.",
                "Superbe, exactement comme sur la photo.",
                "Un achat génial.",
                "Qualité irréprochable.",
            ],
            &[
                "Livraison très rapide.",
                "Je le recommande à tous mes amis.",
                "Parfait pour le prix.",
                "Ma fille l'adore.",
                "Rien à redire.",
            ],
        ),
        neg: (
            &[
                "Arrivé cassé, très déçu.",
                "Qualité horrible.",
                "Le pire achat de l'année.",
                "Produit endommagé à la livraison.",
                "Très décevant.",
                "Ne fonctionne plus après deux jours, nul.",
            ],
            &[
                "Je demande un remboursement.",
                "La livraison est arrivée en retard.",
                "Le service client ne répond pas.",
                "À éviter.",
                "Emballage abîmé.",
            ],
        ),
        neu: (
            &[
                "Reçu mardi.",
                "Il est bleu.",
                "Qualité moyenne.",
                "Acheté pour mon frère.",
                "Conforme à la description.",
                "Colis livré lundi.",
            ],
            &[
                "Taille standard.",
                "La notice est en français.",
                "Rien de spécial.",
                "Couleur grise.",
                "Livré dans un carton.",
            ],
        ),
    },
    LangPhrases {
        code: "es",
        pos: (
            &[
                "Excelente producto, me encanta.",
                "Muy buena calidad, lo recomiendo.",
                "Llegó rapidísimo y funciona perfecto.",
                "Es genial, justo lo que buscaba.",
                "Increíble relación calidad-precio.",
                "Perfecto para regalar.",
            ],
            &[
                "El envío fue muy rápido.",
                "Mi hija está feliz.",
                "Lo volvería a comprar.",
                "Todo perfecto.",
                "Cien por cien recomendable.",
            ],
        ),
        neg: (
            &[
                "Llegó roto, muy decepcionado.",
                "Pésima calidad.",
                "La peor compra del año.",
                "El producto llegó dañado.",
                "Una decepción total.",
                "Dejó de funcionar a los dos días, fatal.",
            ],
            &[
                "Quiero un reembolso.",
                "El envío llegó tarde.",
                "El servicio al cliente no responde.",
                "No lo compren.",
                "La caja venía rota.",
            ],
        ),
        neu: (
            &[
                "Llegó el martes.",
                "Es de color azul.",
                "Calidad normal.",
                "Lo compré para mi hermano.",
                "Coincide con la descripción.",
                "El paquete llegó el lunes.",
            ],
            &[
                "Tamaño estándar.",
                "Las instrucciones están en español.",
                "Nada especial.",
                "Color gris.",
                "Venía en una caja de cartón.",
            ],
        ),
    },
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Sentiment {
    Positive,
    Negative,
    Neutral,
}

struct Review {
    id: i64,
    text: Option<String>,
    lang: &'static str,
    category: &'static str,
    rating: i64,
    created_at_ms: i64,
}

const REVIEW_COUNT: usize = 300;
/// Rows whose text is the empty string.
const EMPTY_TEXT_IDS: [i64; 3] = [23, 156, 277];
/// Rows whose text is NULL.
const NULL_TEXT_IDS: [i64; 2] = [98, 211];
/// Rows whose text is an exact copy of an earlier row's text.
const DUPLICATE_IDS: [i64; 10] = [41, 67, 102, 133, 170, 189, 224, 248, 263, 296];
/// 2026-01-01T00:00:00Z in milliseconds since the Unix epoch.
const YEAR_START_MS: i64 = 1_767_225_600_000;
const YEAR_MS: i64 = 365 * 86_400_000;

/// Fills the `{x}` slots of a template.
fn fill(template: &str, rng: &mut Rng, product: &str) -> String {
    let mut out = template.replace("{p}", product);
    if out.contains("{c}") {
        out = out.replace("{c}", rng.pick(&COLOURS));
    }
    if out.contains("{d}") {
        out = out.replace("{d}", rng.pick(&DAYS));
    }
    if out.contains("{w}") {
        out = out.replace("{w}", rng.pick(&PEOPLE));
    }
    if out.contains("{o}") {
        out = out.replace("{o}", rng.pick(&OCCASIONS));
    }
    if out.contains("{n}") {
        out = out.replace("{n}", &(2 + rng.below(18)).to_string());
    }
    out
}

/// Builds one English review text of 1–3 sentences.
fn english_text(rng: &mut Rng, sentiment: Sentiment, cat: usize) -> String {
    let product = rng.pick(PRODUCTS[cat]);
    let (first, more, cat_more): (&[&str], &[&str], &[&str]) = match sentiment {
        Sentiment::Positive => (&EN_POS_FIRST, &EN_POS_MORE, &EN_POS_CAT[cat]),
        Sentiment::Negative => (&EN_NEG_FIRST, &EN_NEG_MORE, &EN_NEG_CAT[cat]),
        Sentiment::Neutral => (&EN_NEU_FIRST, &EN_NEU_MORE, &[]),
    };
    let sentences = match rng.below(4) {
        0 => 1,
        3 => 3,
        _ => 2,
    };
    let mut parts = vec![fill(rng.pick(first), rng, product)];
    while parts.len() < sentences {
        // Opinionated reviews sometimes carry a factual (neutral) remark as well.
        let next = if sentiment != Sentiment::Neutral && rng.chance(20) {
            fill(rng.pick(&EN_NEU_MORE), rng, product)
        } else if !cat_more.is_empty() && rng.chance(40) {
            fill(rng.pick(cat_more), rng, product)
        } else {
            fill(rng.pick(more), rng, product)
        };
        if !parts.contains(&next) {
            parts.push(next);
        }
    }
    parts.join(" ")
}

/// Builds one German, French or Spanish review text of 1–2 sentences.
fn foreign_text(rng: &mut Rng, sentiment: Sentiment, phrases: &LangPhrases) -> String {
    let (first, more) = match sentiment {
        Sentiment::Positive => phrases.pos,
        Sentiment::Negative => phrases.neg,
        Sentiment::Neutral => phrases.neu,
    };
    let mut text = rng.pick(first).to_string();
    if rng.chance(70) {
        text.push(' ');
        text.push_str(rng.pick(more));
    }
    text
}

fn rating_for(rng: &mut Rng, sentiment: Sentiment) -> i64 {
    match sentiment {
        Sentiment::Positive => {
            if rng.chance(60) {
                5
            } else {
                4
            }
        }
        Sentiment::Negative => {
            if rng.chance(55) {
                1
            } else {
                2
            }
        }
        Sentiment::Neutral => match rng.below(10) {
            0 => 2,
            1 => 4,
            _ => 3,
        },
    }
}

fn make_reviews(rng: &mut Rng) -> Result<Vec<Review>> {
    let special = EMPTY_TEXT_IDS.len() + NULL_TEXT_IDS.len() + DUPLICATE_IDS.len();
    let generated = REVIEW_COUNT - special;
    // Exact 45/35/20 split over the generated texts, in shuffled order.
    let positives = generated * 45 / 100;
    let negatives = generated * 35 / 100;
    let mut sentiments: Vec<Sentiment> = (0..generated)
        .map(|i| {
            if i < positives {
                Sentiment::Positive
            } else if i < positives + negatives {
                Sentiment::Negative
            } else {
                Sentiment::Neutral
            }
        })
        .collect();
    rng.shuffle(&mut sentiments);
    // 15 rows each in German, French and Spanish; the rest English (`None`).
    let mut langs: Vec<Option<usize>> = (0..generated)
        .map(|i| if i < 45 { Some(i / 15) } else { None })
        .collect();
    rng.shuffle(&mut langs);

    let mut seen: HashSet<String> = HashSet::new();
    let mut reviews: Vec<Review> = Vec::with_capacity(REVIEW_COUNT);
    let mut used_sources: HashSet<usize> = HashSet::new();
    let mut next_generated = 0;
    let mut emoji_done = false;
    let slot_ms = YEAR_MS / REVIEW_COUNT as i64;

    for id in 1..=REVIEW_COUNT as i64 {
        // Timestamps rise with the id, jittered within the row's slot, whole seconds.
        let jitter = (rng.below((slot_ms / 1000) as usize) as i64) * 1000;
        let created_at_ms = YEAR_START_MS + (id - 1) * slot_ms + jitter;
        let cat = rng.below(CATEGORIES.len());

        if EMPTY_TEXT_IDS.contains(&id) || NULL_TEXT_IDS.contains(&id) {
            let text = EMPTY_TEXT_IDS.contains(&id).then(String::new);
            reviews.push(Review {
                id,
                text,
                lang: "en",
                category: CATEGORIES[cat],
                rating: 1 + rng.below(5) as i64,
                created_at_ms,
            });
            continue;
        }

        if DUPLICATE_IDS.contains(&id) {
            // Copy an earlier generated, non-duplicate row that has not been copied yet.
            let candidates: Vec<usize> = reviews
                .iter()
                .enumerate()
                .filter(|(i, r)| {
                    r.text.as_deref().is_some_and(|t| !t.is_empty())
                        && !DUPLICATE_IDS.contains(&r.id)
                        && !used_sources.contains(i)
                })
                .map(|(i, _)| i)
                .collect();
            if candidates.is_empty() {
                return Err(AppError(format!(
                    "no earlier text to duplicate for id {id}"
                )));
            }
            let source = rng.pick(&candidates);
            used_sources.insert(source);
            let src = &reviews[source];
            let copy = Review {
                id,
                text: src.text.clone(),
                lang: src.lang,
                category: src.category,
                rating: src.rating,
                created_at_ms,
            };
            reviews.push(copy);
            continue;
        }

        let sentiment = sentiments[next_generated];
        let lang = langs[next_generated];
        next_generated += 1;
        let mut attempts = 0;
        let text = loop {
            let mut text = match lang {
                Some(l) => foreign_text(rng, sentiment, &FOREIGN[l]),
                None => english_text(rng, sentiment, cat),
            };
            if lang.is_none() && sentiment == Sentiment::Positive && !emoji_done {
                text.push_str(" 😍");
            }
            if seen.insert(text.clone()) {
                break text;
            }
            attempts += 1;
            if attempts > 10_000 {
                return Err(AppError(format!(
                    "could not generate a unique review text for id {id}"
                )));
            }
        };
        if text.contains('😍') {
            emoji_done = true;
        }
        reviews.push(Review {
            id,
            text: Some(text),
            lang: lang.map_or("en", |l| FOREIGN[l].code),
            category: CATEGORIES[cat],
            rating: rating_for(rng, sentiment),
            created_at_ms,
        });
    }
    Ok(reviews)
}

// ---------------------------------------------------------------------------------------------
// News article templates.
// ---------------------------------------------------------------------------------------------

struct Topic {
    subjects: &'static [&'static str],
    /// (title fragment, sentence fragment) pairs describing what happened.
    events: &'static [(&'static str, &'static str)],
    details: &'static [&'static str],
    closers: &'static [&'static str],
    sources: &'static [&'static str],
}

const TOPICS: [Topic; 4] = [
    // technology
    Topic {
        subjects: &[
            "Nordlight Systems",
            "Quantix",
            "Brightwave Labs",
            "Corvid Software",
            "Helio Devices",
            "Tessera Cloud",
        ],
        events: &[
            ("unveils foldable tablet", "unveiled a foldable tablet"),
            (
                "releases open-source database",
                "released an open-source database",
            ),
            (
                "launches AI coding assistant",
                "launched an AI coding assistant",
            ),
            (
                "announces low-power laptop chip",
                "announced a low-power laptop chip",
            ),
            ("delays home robot", "delayed the launch of its home robot"),
            (
                "expands satellite internet service",
                "expanded its satellite internet service",
            ),
            (
                "patches critical security flaw",
                "patched a critical security flaw in its router firmware",
            ),
            ("opens new data centre", "opened a new data centre"),
        ],
        details: &[
            "The company says the product uses 40 percent less power than its predecessor.",
            "Customers in Europe will get access first.",
            "The firm says it runs entirely on renewable energy.",
            "It supports twelve languages at launch.",
            "A developer preview is already available.",
            "Pricing has not been announced.",
        ],
        closers: &[
            "Shares rose 3 percent in early trading.",
            "Privacy groups said they would review the terms.",
            "Analysts expect strong demand from schools.",
            "Competitors are expected to respond within months.",
            "",
        ],
        sources: &["Tech Wire", "The Byte Report", "Global Times"],
    },
    // business
    Topic {
        subjects: &[
            "Harbor Foods",
            "Atlas Freight",
            "Meridian Bank",
            "Pinecrest Retail",
            "Solvane Energy",
            "Kestrel Airlines",
        ],
        events: &[
            (
                "reports revenue jump",
                "reported quarterly revenue up 12 percent",
            ),
            (
                "agrees merger with rival",
                "agreed to merge with a smaller rival",
            ),
            (
                "plans 40 new stores",
                "plans to open 40 new stores next year",
            ),
            ("cuts 300 jobs", "said it will cut 300 jobs"),
            ("raises prices", "raised prices by 5 percent"),
            ("names new chief executive", "named a new chief executive"),
            (
                "misses profit forecast",
                "missed its profit forecast for the second quarter",
            ),
            ("buys back shares", "announced a share buyback programme"),
        ],
        details: &[
            "The board approved the decision unanimously.",
            "Higher fuel costs weighed on margins.",
            "The company blamed weak consumer spending.",
            "Online sales grew faster than sales in stores.",
            "The chief financial officer called the quarter challenging.",
            "Employees were informed on Monday.",
        ],
        closers: &[
            "The stock closed slightly higher.",
            "Investors will hear more at the annual meeting in June.",
            "Rivals are watching closely.",
            "The company will publish full results next month.",
            "",
        ],
        sources: &["Market Daily", "The Ledger", "Global Times"],
    },
    // science
    Topic {
        subjects: &[
            "Researchers in Tallinn",
            "Scientists in Kyoto",
            "Researchers in Cape Town",
            "Marine biologists in Lisbon",
            "Climate scientists in Oslo",
            "Researchers in Geneva",
        ],
        events: &[
            (
                "find new deep-sea shrimp",
                "discovered a new species of deep-sea shrimp",
            ),
            (
                "record ocean temperatures",
                "measured record ocean temperatures in the North Atlantic",
            ),
            (
                "detect water vapour on exoplanet",
                "detected water vapour on a distant exoplanet",
            ),
            (
                "build five-minute battery",
                "built a battery that charges in five minutes",
            ),
            (
                "map tern migration",
                "mapped the migration routes of Arctic terns",
            ),
            ("grow heart tissue", "grew heart tissue from stem cells"),
            (
                "date oldest cave paintings",
                "dated cave paintings to more than 50,000 years ago",
            ),
            (
                "observe rare solar flare",
                "observed a rare double solar flare",
            ),
        ],
        details: &[
            "The results were published in a peer-reviewed journal.",
            "The study took six years to complete.",
            "The findings still need to be confirmed by other groups.",
            "Data from three satellites was combined for the analysis.",
            "The work was funded by a public research council.",
            "The team used a new type of sensor.",
        ],
        closers: &[
            "Follow-up experiments are planned for next year.",
            "Other scientists called the result surprising.",
            "The raw data has been made public.",
            "The team hopes the method can be used in hospitals.",
            "",
        ],
        sources: &["Science Today", "Lab Notes", "Global Times"],
    },
    // general news
    Topic {
        subjects: &[
            "Springfield",
            "Riverton",
            "Lakeside",
            "Northbridge",
            "Eastport",
            "Millbrook",
        ],
        events: &[
            (
                "approves new bike lanes",
                "approved twelve kilometres of new bike lanes",
            ),
            (
                "closes mountain roads after snow",
                "closed its mountain roads after heavy snow",
            ),
            (
                "reopens museum",
                "reopened its history museum after a two-year renovation",
            ),
            (
                "marathon draws record crowd",
                "hosted a marathon that drew a record crowd",
            ),
            (
                "braces for train strike",
                "is bracing for a two-day train strike",
            ),
            (
                "extends library hours",
                "extended library opening hours on weekends",
            ),
            (
                "opens new bridge",
                "opened a new pedestrian bridge over the river",
            ),
            (
                "holds summer festival",
                "held its first summer music festival in a decade",
            ),
        ],
        details: &[
            "The mayor said the plan was overdue.",
            "Residents were asked to avoid unnecessary travel.",
            "Hundreds of residents attended a public meeting about it.",
            "The project cost 4 million euros.",
            "Volunteers helped with the preparations.",
            "Local shops reported busy days.",
        ],
        closers: &[
            "Officials will review the results in autumn.",
            "Further updates are expected on Friday.",
            "Public transport ran on a reduced timetable.",
            "Tickets for next year go on sale in March.",
            "",
        ],
        sources: &["City Herald", "The Morning Post", "Global Times"],
    },
];

struct Article {
    id: i64,
    title: String,
    text: String,
    source: &'static str,
    published_at: String,
}

fn make_articles(rng: &mut Rng) -> Result<Vec<Article>> {
    const COUNT: usize = 60;
    let mut topic_order: Vec<usize> = (0..COUNT).map(|i| i % TOPICS.len()).collect();
    rng.shuffle(&mut topic_order);
    let mut titles: HashSet<String> = HashSet::new();
    let mut texts: HashSet<String> = HashSet::new();
    let mut articles = Vec::with_capacity(COUNT);
    let slot_ms = YEAR_MS / COUNT as i64;
    for (i, &t) in topic_order.iter().enumerate() {
        let topic = &TOPICS[t];
        let mut attempts = 0;
        let (title, text) = loop {
            let subject = rng.pick(topic.subjects);
            let (headline, event) = rng.pick(topic.events);
            let title = format!("{subject} {headline}");
            let mut text = format!("{subject} {event}. {}", rng.pick(topic.details));
            let closer = rng.pick(topic.closers);
            if !closer.is_empty() {
                text.push(' ');
                text.push_str(closer);
            }
            if !titles.contains(&title) && !texts.contains(&text) {
                titles.insert(title.clone());
                texts.insert(text.clone());
                break (title, text);
            }
            attempts += 1;
            if attempts > 10_000 {
                return Err(AppError(format!(
                    "could not generate a unique article {}",
                    i + 1
                )));
            }
        };
        let jitter = (rng.below((slot_ms / 1000) as usize) as i64) * 1000;
        let published_ms = YEAR_START_MS + i as i64 * slot_ms + jitter;
        articles.push(Article {
            id: i as i64 + 1,
            title,
            text,
            source: rng.pick(topic.sources),
            published_at: iso8601(published_ms),
        });
    }
    Ok(articles)
}

// ---------------------------------------------------------------------------------------------
// Output.
// ---------------------------------------------------------------------------------------------

/// Formats milliseconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ` (whole seconds).
fn iso8601(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The reviews as one batch. `created_at` is `Timestamp(Millisecond, "UTC")` for Parquet, or the
/// ISO-8601 string for JSON (formatting a named time zone would need arrow's `chrono-tz`).
fn reviews_batch(reviews: &[Review], created_at_as_string: bool) -> Result<RecordBatch> {
    let created_at_type = if created_at_as_string {
        DataType::Utf8
    } else {
        DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
    };
    let schema: SchemaRef = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("text", DataType::Utf8, true),
        Field::new("lang", DataType::Utf8, false),
        Field::new("category", DataType::Utf8, false),
        Field::new("rating", DataType::Int64, false),
        Field::new("created_at", created_at_type, false),
    ]));
    let created_at: ArrayRef = if created_at_as_string {
        Arc::new(StringArray::from_iter_values(
            reviews.iter().map(|r| iso8601(r.created_at_ms)),
        ))
    } else {
        Arc::new(
            TimestampMillisecondArray::from_iter_values(reviews.iter().map(|r| r.created_at_ms))
                .with_timezone("UTC"),
        )
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(reviews.iter().map(|r| r.id))),
        Arc::new(StringArray::from_iter(
            reviews.iter().map(|r| r.text.as_deref()),
        )),
        Arc::new(StringArray::from_iter_values(
            reviews.iter().map(|r| r.lang),
        )),
        Arc::new(StringArray::from_iter_values(
            reviews.iter().map(|r| r.category),
        )),
        Arc::new(Int64Array::from_iter_values(
            reviews.iter().map(|r| r.rating),
        )),
        created_at,
    ];
    RecordBatch::try_new(schema, columns).context(|| "building the reviews batch".into())
}

fn articles_batch(articles: &[Article]) -> Result<RecordBatch> {
    let schema: SchemaRef = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("title", DataType::Utf8, false),
        Field::new("text", DataType::Utf8, false),
        Field::new("source", DataType::Utf8, false),
        Field::new("published_at", DataType::Utf8, false),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(articles.iter().map(|a| a.id))),
        Arc::new(StringArray::from_iter_values(
            articles.iter().map(|a| a.title.as_str()),
        )),
        Arc::new(StringArray::from_iter_values(
            articles.iter().map(|a| a.text.as_str()),
        )),
        Arc::new(StringArray::from_iter_values(
            articles.iter().map(|a| a.source),
        )),
        Arc::new(StringArray::from_iter_values(
            articles.iter().map(|a| a.published_at.as_str()),
        )),
    ];
    RecordBatch::try_new(schema, columns).context(|| "building the articles batch".into())
}

/// Quotes a CSV field when needed; the empty string is always quoted so that it differs from
/// NULL, which is written as an empty unquoted field.
fn csv_field(value: &str) -> String {
    let needs_quotes = value.is_empty()
        || value.contains([',', '"', '\n', '\r'])
        || value.starts_with(' ')
        || value.ends_with(' ');
    if needs_quotes {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_string()
    }
}

fn create(path: &Path) -> Result<BufWriter<File>> {
    File::create(path)
        .map(BufWriter::new)
        .context(|| format!("cannot create {}", path.display()))
}

fn write_reviews_csv(path: &Path, reviews: &[Review]) -> Result<()> {
    let mut out = create(path)?;
    let mut body = String::from("id,text,lang,category,rating,created_at\n");
    for r in reviews {
        let text = r.text.as_deref().map(csv_field).unwrap_or_default();
        body.push_str(&format!(
            "{},{},{},{},{},{}\n",
            r.id,
            text,
            csv_field(r.lang),
            csv_field(r.category),
            r.rating,
            iso8601(r.created_at_ms)
        ));
    }
    out.write_all(body.as_bytes())
        .and_then(|()| out.flush())
        .context(|| format!("cannot write {}", path.display()))
}

fn write_json(path: &Path, batch: &RecordBatch) -> Result<()> {
    let out = create(path)?;
    let what = || format!("cannot write {}", path.display());
    // Explicit nulls: a NULL text is written as `"text":null` rather than left out.
    let mut writer: LineDelimitedWriter<_> = arrow::json::WriterBuilder::new()
        .with_explicit_nulls(true)
        .build(out);
    writer.write(batch).context(what)?;
    writer.finish().context(what)?;
    writer.into_inner().flush().context(what)
}

fn write_parquet(path: &Path, batch: &RecordBatch) -> Result<()> {
    let out = create(path)?;
    let what = || format!("cannot write {}", path.display());
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let mut writer = ArrowWriter::try_new(out, batch.schema(), Some(props)).context(what)?;
    writer.write(batch).context(what)?;
    writer.close().context(what)?;
    Ok(())
}

fn main() -> Result<()> {
    let out_dir = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "data".into()));
    fs::create_dir_all(&out_dir).context(|| format!("cannot create {}", out_dir.display()))?;

    let mut rng = Rng(0x00B1_0550_5EED_2026);
    let reviews = make_reviews(&mut rng)?;
    let articles = make_articles(&mut rng)?;
    let reviews_json = reviews_batch(&reviews, true)?;
    let reviews_parquet = reviews_batch(&reviews, false)?;
    let articles_batch = articles_batch(&articles)?;

    let path = out_dir.join("reviews.csv");
    write_reviews_csv(&path, &reviews)?;
    println!("wrote {} ({} rows)", path.display(), reviews.len());

    let path = out_dir.join("reviews.json");
    write_json(&path, &reviews_json)?;
    println!(
        "wrote {} ({} rows)",
        path.display(),
        reviews_json.num_rows()
    );

    let path = out_dir.join("reviews.parquet");
    write_parquet(&path, &reviews_parquet)?;
    println!(
        "wrote {} ({} rows)",
        path.display(),
        reviews_parquet.num_rows()
    );

    let path = out_dir.join("articles.json");
    write_json(&path, &articles_batch)?;
    println!(
        "wrote {} ({} rows)",
        path.display(),
        articles_batch.num_rows()
    );
    Ok(())
}
