"""Topics of the widened chat space (sample indices >= ``chat._LEGACY``): three comma-free sentences each,
the first naming the topic and holding a word of 4+ letters (the include-keyword is drawn from it)."""

from __future__ import annotations

WIDE_TOPICS = {
    "owls": [
        "Owls hunt at night.",
        "They can turn their heads very far.",
        "Their wings make almost no sound.",
    ],
    "rivers": ["Rivers carry water to the sea.", "Many cities were built beside them.", "Fish swim in them."],
    "bridges": [
        "Bridges let people cross rivers and valleys.",
        "Some are made of steel.",
        "The longest ones span many miles.",
    ],
    "pizza": [
        "Pizza starts with a flat round dough.",
        "It is baked in a very hot oven.",
        "Cheese melts on top.",
    ],
    "snow": [
        "Snow falls when the air is cold.",
        "Each flake has six sides.",
        "Children like to build snowmen.",
    ],
    "libraries": [
        "Libraries lend books for free.",
        "They are quiet places to study.",
        "Many also offer computers.",
    ],
    "dolphins": [
        "Dolphins are clever sea mammals.",
        "They live in groups called pods.",
        "They talk with clicks and whistles.",
    ],
    "forests": [
        "Forests are home to many animals.",
        "Their trees make oxygen.",
        "A walk in the woods can feel calm.",
    ],
    "kites": [
        "Kites fly on a steady wind.",
        "A long string keeps them close.",
        "Some kites have bright tails.",
    ],
    "the sun": [
        "The sun is the star at the center of our solar system.",
        "It gives the Earth light and heat.",
        "Plants use its light to grow.",
    ],
    "honey": [
        "Honey is made by bees from nectar.",
        "It can last for a very long time.",
        "Many people add it to tea.",
    ],
    "clocks": [
        "Clocks show the time of day.",
        "Old ones use gears and springs.",
        "Some clocks ring every hour.",
    ],
    "penguins": [
        "Penguins are birds that cannot fly.",
        "They swim fast in cold water.",
        "Most of them live near the South Pole.",
    ],
    "soccer": [
        "Soccer is played by two teams of eleven.",
        "Players move the ball with their feet.",
        "A goal counts as one point.",
    ],
    "maps": [
        "Maps show where places are.",
        "They use symbols for roads and rivers.",
        "Many people now use maps on their phones.",
    ],
    "islands": [
        "Islands are land with water all around.",
        "Some are very small.",
        "People often reach them by boat.",
    ],
    "camping": [
        "Camping means sleeping outdoors in a tent.",
        "A fire keeps the camp warm.",
        "Campers should pack out their trash.",
    ],
    "dinosaurs": [
        "Dinosaurs lived millions of years ago.",
        "Some were as tall as a house.",
        "We learn about them from fossils.",
    ],
    "elephants": [
        "Elephants are the largest land animals.",
        "They use their trunks to drink.",
        "They remember places for years.",
    ],
    "photography": [
        "Photography is the art of taking pictures.",
        "Light is the key to a good photo.",
        "A steady hand helps.",
    ],
    "swimming": [
        "Swimming works every muscle in the body.",
        "It is a good way to stay cool.",
        "Lessons help beginners feel safe.",
    ],
    "cheese": ["Cheese is made from milk.", "There are hundreds of kinds.", "Some cheese is aged for years."],
    "butterflies": [
        "Butterflies start life as caterpillars.",
        "Their wings are covered in tiny scales.",
        "They drink nectar from flowers.",
    ],
    "the wind": [
        "The wind is moving air.",
        "It can turn the blades of a mill.",
        "Strong wind can bend trees.",
    ],
    "apples": [
        "Apples grow on trees.",
        "They can be red or green or yellow.",
        "An apple a day is an old saying.",
    ],
    "volleyball": [
        "Volleyball is played over a high net.",
        "Each team can touch the ball three times.",
        "It is popular on beaches.",
    ],
    "rabbits": [
        "Rabbits have long ears.",
        "They eat grass and leafy greens.",
        "A baby rabbit is called a kit.",
    ],
    "stars": [
        "Stars are huge balls of hot gas.",
        "They shine most clearly on dark nights.",
        "The closest one is the sun.",
    ],
    "painting": [
        "Painting lets people share what they see.",
        "Artists mix colors on a palette.",
        "Some paintings are very old.",
    ],
    "birthdays": [
        "Birthdays mark the day a person was born.",
        "Many people eat cake on them.",
        "Friends often sing a song.",
    ],
    "horses": [
        "Horses are strong and fast animals.",
        "People have ridden them for thousands of years.",
        "They can sleep standing up.",
    ],
    "frogs": [
        "Frogs live near ponds and streams.",
        "They start life as tadpoles.",
        "Their long tongues catch insects.",
    ],
    "winter": [
        "Winter is the coldest season.",
        "Days are short and nights are long.",
        "Some animals sleep until spring.",
    ],
    "lighthouses": [
        "Lighthouses guide ships at night.",
        "Their bright lamps turn in circles.",
        "Many stand on rocky coasts.",
    ],
    "soup": [
        "Soup is a warm meal in a bowl.",
        "It can be made from almost any vegetable.",
        "A hot soup is nice on a cold day.",
    ],
    "airplanes": [
        "Airplanes fly high above the clouds.",
        "Their wings give them lift.",
        "A long flight can cross a whole sea.",
    ],
    "whales": [
        "Whales are the largest animals on Earth.",
        "They breathe air through a blowhole.",
        "Some whales sing long songs.",
    ],
    "recycling": [
        "Recycling turns old things into new ones.",
        "Paper and glass can be used again.",
        "It keeps trash out of the land.",
    ],
    "chocolate": [
        "Chocolate is made from cocoa beans.",
        "It can be dark or milk or white.",
        "Many people love it as a treat.",
    ],
    "sharks": [
        "Sharks have lived in the sea for a very long time.",
        "They have many rows of teeth.",
        "Most sharks do not attack people.",
    ],
    "camels": [
        "Camels can walk for days without water.",
        "They store fat in their humps.",
        "Their wide feet do not sink in sand.",
    ],
    "spiders": [
        "Spiders spin webs from silk.",
        "Most of them have eight eyes.",
        "They help by eating pests.",
    ],
    "rainbows": [
        "Rainbows appear when sunlight meets rain.",
        "They show seven colors.",
        "You see one with the sun behind you.",
    ],
    "pottery": [
        "Pottery is shaped from wet clay.",
        "It is baked hard in a kiln.",
        "People have made pots for ages.",
    ],
    "hiking": [
        "Hiking means a long walk on a trail in the hills.",
        "Good shoes make it much easier.",
        "Always carry water with you.",
    ],
    "lions": [
        "Lions live in groups called prides.",
        "The males have thick manes.",
        "They rest for much of the day.",
    ],
    "tomatoes": [
        "Tomatoes grow on green vines.",
        "They are a fruit used like a vegetable.",
        "Ripe ones are soft and red.",
    ],
    "yoga": [
        "Yoga joins breathing with slow movement.",
        "It can make the body more flexible.",
        "Many people do it in the morning.",
    ],
}
WIDE_ASK = [
    "Write a short paragraph about {}.",
    "Give me a few facts about {}.",
    "What can you tell me about {}?",
    "Share some thoughts on {}.",
    "Explain {} in simple words.",
    "I would like a short note about {}.",
    "Write a brief description of {}.",
    "Talk to me about {}.",
    "Please write about {}.",
    "Could you describe {} for me?",
    "Give me a quick overview of {}.",
    "Write something short on the subject of {}.",
]
WIDE_SAYS = {  # more phrasings of each instruction (the version-1 phrasing comes first in chat._SAYS)
    "max_words": ["Keep it to {} words or fewer.", "Use no more than {} words."],
    "min_words": ["Use {} words or more.", "The answer must have at least {} words."],
    "lowercase": ["Write in all lowercase.", "Do not use any capital letters."],
    "uppercase": ["Use only capital letters.", "Answer in all caps."],
    "include_keywords": ["Make sure to use the word '{[0]}'.", "Mention the word '{[0]}'."],
    "exclude_keywords": ["Avoid the word '{[0]}'.", "Never say the word '{[0]}'."],
    "end_with": ["Finish with exactly this phrase: {}", "The last words must be: {}"],
    "start_with": ["Begin with exactly this phrase: {}", "The first words must be: {}"],
    "num_bullets": [
        "Give exactly {} bullet points that start with '- '.",
        "Format it as {} bullets, each starting with '- '.",
    ],
    "no_commas": ["Avoid commas entirely.", "Write it without commas."],
}
WIDE_STARTS = ["Certainly.", "Happy to help.", "Here you go:", "Gladly.", "All right."]
WIDE_ENDS = [
    "Have a nice day.",
    "Let me know if you want more.",
    "That sums it up.",
    "I hope you enjoyed it.",
    "Thank you for reading.",
]
WIDE_OTHER = ["lantern", "cactus", "violin", "glacier", "tornado", "parrot", "marble", "compass"]
